//! Baselines outside meshsim: containers started with the docker CLI, one by one (as the
//! original meshsim did) or all at once doing nothing (the engine's floor).

use std::process::Command;
use std::time::Instant;

fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The newest meshsim agent image (built by a meshsim simulation on first use).
pub fn agent_image() -> Result<String, String> {
    docker(&[
        "images",
        "meshsim-agent",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ])?
    .lines()
    .next()
    .map(str::to_string)
    .ok_or_else(|| "no meshsim-agent image: start a Docker simulation first".into())
}

/// Numbers each baseline run's network, so a network the engine failed to remove never
/// collides with the next.
static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How to start the baseline containers.
#[derive(Debug, Clone, Copy)]
pub enum Baseline {
    /// Agent containers, each `docker run` after the previous returned.
    OneByOne,
    /// Containers that exit at once (`tc` with no arguments), all `docker run` in parallel.
    FloorInParallel,
}

/// Starts `n` containers of `image` on a fresh internal network the way `how` says;
/// returns the seconds until every `docker run` returned. Removes them all afterwards.
pub fn start(n: usize, image: &str, how: Baseline) -> Result<f64, String> {
    let kind = match how {
        Baseline::OneByOne => "one",
        Baseline::FloorInParallel => "floor",
    };
    let run_no = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let net = format!("meshsim-bench-{}-{n}-{kind}-{run_no}", std::process::id());
    let label = "meshsim.bench=1";
    docker(&["network", "create", "--internal", "--label", label, &net])?;
    let run = |i: usize| {
        let name = format!("{net}-{i}");
        let mut a = vec![
            "run",
            "-d",
            "-i",
            "--label",
            label,
            "--network",
            &net,
            "--cap-add",
            "NET_ADMIN",
        ];
        if let Baseline::FloorInParallel = how {
            a.extend(["--entrypoint", "/usr/sbin/tc"]);
        }
        a.extend(["--name", &name, image]);
        docker(&a).map(drop)
    };
    let t = Instant::now();
    let started: Result<(), String> = match how {
        Baseline::OneByOne => (0..n).try_for_each(run),
        Baseline::FloorInParallel => std::thread::scope(|s| {
            let hs: Vec<_> = (0..n).map(|i| s.spawn(move || run(i))).collect();
            hs.into_iter()
                .try_for_each(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
        }),
    };
    let secs = t.elapsed().as_secs_f64();
    let ids = docker(&["ps", "-aq", "--filter", &format!("label={label}")])?;
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids.lines());
    if rm.len() > 2 {
        docker(&rm)?;
    }
    // The engine releases a removed container's endpoint asynchronously (retry a while), and
    // Docker 20.10 sometimes keeps a stale one for good after a burst of parallel runs: then
    // the network is left behind (labelled `meshsim.bench=1`) and the run goes on.
    let mut removed = docker(&["network", "rm", &net]);
    for _ in 0..25 {
        if removed.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        removed = docker(&["network", "rm", &net]);
    }
    if let Err(e) = removed {
        eprintln!("warning: {e} (remove it with `docker network rm {net}` later)");
    }
    started.map(|()| secs)
}
