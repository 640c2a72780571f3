//! Link shaping in the container's kernel, per peer and per direction. Detected, not assumed:
//! - `netem`: on egress, an HTB class per peer (bandwidth) with a netem leaf (latency,
//!   jitter, loss), selected by a u32 filter on the peer's address;
//! - `nfqueue+htb` (kernels without netem): HTB classes for bandwidth on egress, and the
//!   NFQUEUE [`Delayer`] for latency, jitter and loss on ingress.
//!
//! Partitions drop packets from the cut-off peers on ingress (both sides do it), so the
//! senders' TCP sees loss, as on a real cut.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use meshsim::__agent::{LinkShape, proto, shape_of};

use crate::delay::{self, Delayer, Stats};

/// HTB rate standing in for "unlimited".
const UNLIMITED: &str = "40gbit";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Netem,
    NfqueueHtb,
}

pub struct Shaper {
    delayer: Result<Delayer, String>,
    mode: Option<Mode>,
    detail: String,
    iptables: &'static str,
    dev: String,
    ips: HashMap<u32, Ipv4Addr>,
    /// Peers with an NFQUEUE rule, and the address it matches.
    queued: HashMap<u32, Ipv4Addr>,
    /// Peers with a DROP rule, and the address it matches.
    blocked: HashMap<u32, Ipv4Addr>,
}

/// Runs a command; its stderr is the error.
async fn run(program: &str, args: &[String]) -> Result<(), String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

impl Shaper {
    pub fn new(delayer: Result<Delayer, String>) -> Self {
        Shaper {
            delayer,
            mode: None,
            detail: String::new(),
            iptables: "iptables",
            dev: "eth0".into(),
            ips: HashMap::new(),
            queued: HashMap::new(),
            blocked: HashMap::new(),
        }
    }

    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            Some(Mode::Netem) => "netem",
            Some(Mode::NfqueueHtb) => "nfqueue+htb",
            None => "none",
        }
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }

    async fn tc(&self, args: &str) -> Result<(), String> {
        run("tc", &words(args)).await
    }

    async fn ipt(&self, args: &str) -> Result<(), String> {
        run(self.iptables, &words(&format!("-w {args}"))).await
    }

    /// Finds what this kernel and container allow, and prepares it. Fails with what is
    /// missing when no mode works.
    pub async fn detect(&mut self) -> Result<(), String> {
        if let Ok(entries) = std::fs::read_dir("/sys/class/net") {
            let mut devs: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|d| d != "lo")
                .collect();
            devs.sort();
            if let Some(d) = devs.into_iter().next() {
                self.dev = d;
            }
        }
        let htb = self
            .tc(&format!(
                "qdisc replace dev {} root handle 1: htb",
                self.dev
            ))
            .await;
        let netem = match self
            .tc("qdisc add dev lo root handle 1: netem delay 1ms")
            .await
        {
            Ok(()) => {
                let _ = self.tc("qdisc del dev lo root").await;
                Ok(())
            }
            Err(e) => Err(e),
        };
        let mut iptables = Err(String::new());
        for bin in ["iptables", "iptables-legacy"] {
            self.iptables = bin;
            iptables = self.ipt("-N MESHSIM-BLOCK").await;
            if iptables.is_ok() {
                break;
            }
        }
        let setup = async {
            iptables.clone()?;
            self.ipt("-N MESHSIM-DELAY").await?;
            self.ipt("-I INPUT 1 -j MESHSIM-DELAY").await?;
            self.ipt("-I INPUT 1 -j MESHSIM-BLOCK").await
        }
        .await;
        let why = |r: &Result<(), String>| match r {
            Ok(()) => "ok".to_string(),
            Err(e) => e.clone(),
        };
        let queue = self.delayer.as_ref().map(|_| ()).map_err(Clone::clone);
        self.mode = match (&htb, &netem, &queue, &setup) {
            (Ok(()), Ok(()), _, Ok(())) => Some(Mode::Netem),
            (Ok(()), Err(_), Ok(()), Ok(())) => Some(Mode::NfqueueHtb),
            _ => None,
        };
        self.detail = match self.mode {
            Some(Mode::Netem) => format!("tc netem + htb on {}, {}", self.dev, self.iptables),
            Some(Mode::NfqueueHtb) => format!(
                "kernel has no netem ({}); NFQUEUE delayer + htb on {}, {}",
                why(&netem),
                self.dev,
                self.iptables
            ),
            None => {
                return Err(format!(
                    "cannot shape links here: needs HTB and iptables, plus netem or NFQUEUE. \
                     htb: {}; netem: {}; nfqueue: {}; iptables: {}",
                    why(&htb),
                    why(&netem),
                    why(&queue),
                    why(&setup)
                ));
            }
        };
        Ok(())
    }

    pub fn set_peers(&mut self, peers: &[proto::Peer]) -> Result<(), String> {
        for p in peers {
            let ip =
                p.ip.parse()
                    .map_err(|_| format!("peer {}: bad IPv4 address {:?}", p.node, p.ip))?;
            self.ips.insert(p.node, ip);
        }
        Ok(())
    }

    fn ip(&self, peer: u32) -> Result<Ipv4Addr, String> {
        self.ips
            .get(&peer)
            .copied()
            .ok_or_else(|| format!("no address for peer n{peer}"))
    }

    /// Applies each peer's shapes.
    pub async fn apply(&mut self, peers: &[proto::PeerShape]) -> Result<(), String> {
        let mode = self.mode.ok_or("shaping not detected yet")?;
        for p in peers {
            let ip = self.ip(p.peer)?;
            let out = shape_of(p.outgoing.as_ref());
            let inc = shape_of(p.incoming.as_ref());
            self.egress(p.peer, ip, &out, mode == Mode::Netem).await?;
            if mode == Mode::NfqueueHtb {
                self.ingress(p.peer, ip, &inc).await?;
            }
        }
        Ok(())
    }

    /// An HTB class for the peer (and in netem mode its netem leaf), and the filter to it.
    async fn egress(
        &self,
        peer: u32,
        ip: Ipv4Addr,
        s: &LinkShape,
        netem: bool,
    ) -> Result<(), String> {
        let class = peer + 2;
        if class > 0xffff {
            return Err(format!("peer n{peer}: at most 65533 peers can be shaped"));
        }
        let rate = match s.bandwidth {
            Some(bps) => format!("{}bit", bps.max(8)),
            None => UNLIMITED.to_string(),
        };
        let dev = &self.dev;
        self.tc(&format!(
            "class replace dev {dev} parent 1: classid 1:{class:x} htb rate {rate} ceil {rate}"
        ))
        .await?;
        if netem {
            self.tc(&format!(
                "qdisc replace dev {dev} parent 1:{class:x} handle {class:x}: netem delay {}us {}us loss {}% limit 1000000",
                s.latency.as_micros(),
                s.jitter.as_micros(),
                s.loss * 100.0
            ))
            .await?;
        }
        self.tc(&format!(
            "filter replace dev {dev} parent 1: protocol ip prio 1 handle 800::{class:x} u32 match ip dst {ip}/32 flowid 1:{class:x}"
        ))
        .await
    }

    /// Queues the peer's packets to the delayer when its incoming direction is shaped.
    async fn ingress(&mut self, peer: u32, ip: Ipv4Addr, s: &LinkShape) -> Result<(), String> {
        let delayer = self.delayer.as_ref().map_err(Clone::clone)?;
        let shaped = !s.latency.is_zero() || !s.jitter.is_zero() || s.loss > 0.0;
        let rule = |ip: Ipv4Addr| {
            format!(
                "MESHSIM-DELAY -s {ip}/32 -j NFQUEUE --queue-num {}",
                delay::QUEUE
            )
        };
        if let Some(old) = self.queued.get(&peer).copied()
            && (old != ip || !shaped)
        {
            self.ipt(&format!("-D {}", rule(old))).await?;
            delayer.set(old, None);
            self.queued.remove(&peer);
        }
        if shaped {
            delayer.set(ip, Some(*s));
            if !self.queued.contains_key(&peer) {
                self.ipt(&format!("-A {}", rule(ip))).await?;
                self.queued.insert(peer, ip);
            }
        }
        Ok(())
    }

    /// Drops (or passes again) every packet from these peers.
    pub async fn block(&mut self, peers: &[u32], blocked: bool) -> Result<(), String> {
        for &peer in peers {
            let ip = self.ip(peer)?;
            if blocked {
                if !self.blocked.contains_key(&peer) {
                    self.ipt(&format!("-A MESHSIM-BLOCK -s {ip}/32 -j DROP"))
                        .await?;
                    self.blocked.insert(peer, ip);
                }
            } else if let Some(old) = self.blocked.remove(&peer) {
                self.ipt(&format!("-D MESHSIM-BLOCK -s {old}/32 -j DROP"))
                    .await?;
            }
        }
        Ok(())
    }

    pub fn stats(&self) -> Stats {
        self.delayer
            .as_ref()
            .map(Delayer::stats)
            .unwrap_or_default()
    }
}
