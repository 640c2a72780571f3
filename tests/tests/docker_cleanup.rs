//! Nothing of a Docker run outlives it: after a pass, a panic, a timeout, and a SIGKILL of
//! the test process (whose leftovers the next run removes). Each case runs a probe test from
//! this binary in a child process and then asks the Docker engine what is left of it.
//! Without a Docker engine these skip with a message, unless `CI` or
//! `MESHSIM_REQUIRE_DOCKER` is set: then they fail.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use meshsim::{DEFAULT_TOPIC, Topology, ms, node, secs};

/// Set in the child processes only: the probes do nothing otherwise.
const PROBE: &str = "MESHSIM_CLEANUP_PROBE";

fn probing() -> bool {
    std::env::var_os(PROBE).is_some()
}

async fn three_nodes(sim: meshsim::Sim) -> meshsim::Result<meshsim::Simulation> {
    sim.start(Topology::line(3)?.with_latency(ms(5))).await
}

#[meshsim::test(backend = "docker")]
#[ignore = "run by the cleanup tests in a child process"]
async fn probe_passes(sim: meshsim::Sim) -> meshsim::Result<()> {
    if probing() {
        let sim = three_nodes(sim).await?;
        let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
        sim.wait_delivered(msg, secs(20)).await?;
    }
    Ok(())
}

#[meshsim::test(backend = "docker")]
#[ignore = "run by the cleanup tests in a child process"]
async fn probe_panics(sim: meshsim::Sim) -> meshsim::Result<()> {
    if probing() {
        let _sim = three_nodes(sim).await?;
        panic!("probe panics with containers running");
    }
    Ok(())
}

#[meshsim::test(backend = "docker", timeout = "20s")]
#[ignore = "run by the cleanup tests in a child process"]
async fn probe_times_out(sim: meshsim::Sim) -> meshsim::Result<()> {
    if probing() {
        let _sim = three_nodes(sim).await?;
        std::future::pending::<()>().await;
    }
    Ok(())
}

#[meshsim::test(backend = "docker", timeout = "300s")]
#[ignore = "run by the cleanup tests in a child process"]
async fn probe_waits_to_be_killed(sim: meshsim::Sim) -> meshsim::Result<()> {
    if probing() {
        let _sim = three_nodes(sim).await?;
        println!("PROBE-READY");
        std::future::pending::<()>().await;
    }
    Ok(())
}

fn probe(name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "--ignored",
        "--exact",
        "--nocapture",
        "--test-threads=1",
        name,
    ])
    .env(PROBE, "1")
    .env("MESHSIM_REQUIRE_DOCKER", "1");
    cmd
}

/// Containers and networks labelled as owned by process `pid`.
fn owned_by(pid: u32) -> Vec<String> {
    let mut left = Vec::new();
    for (what, name) in [
        (&["ps", "-a"][..], "{{.Names}}"),
        (&["network", "ls"][..], "{{.Name}}"),
    ] {
        let out = Command::new("docker")
            .args(what)
            .args([
                "--filter",
                "label=meshsim.managed=true",
                "--format",
                &format!("{name} {{{{.Labels}}}}"),
            ])
            .output()
            .expect("the docker CLI");
        assert!(out.status.success(), "docker {what:?} failed: {out:?}");
        left.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains(&format!("/{pid}/")))
                .map(str::to_string),
        );
    }
    left
}

fn run_probe(name: &str) -> (u32, Output) {
    let child = probe(name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn probe");
    let pid = child.id();
    (pid, child.wait_with_output().expect("probe output"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[meshsim::test(backend = "docker", timeout = "300s")]
async fn nothing_left_after_pass_panic_and_timeout(_sim: meshsim::Sim) -> meshsim::Result<()> {
    let (pid, out) = run_probe("probe_passes");
    assert!(out.status.success(), "probe failed:\n{}", text(&out));
    assert_eq!(owned_by(pid), Vec::<String>::new(), "left after a pass");

    let (pid, out) = run_probe("probe_panics");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("probe panics with containers running"),
        "{}",
        text(&out)
    );
    assert_eq!(owned_by(pid), Vec::<String>::new(), "left after a panic");

    let (pid, out) = run_probe("probe_times_out");
    assert!(!out.status.success());
    assert!(text(&out).contains("timed out"), "{}", text(&out));
    assert_eq!(owned_by(pid), Vec::<String>::new(), "left after a timeout");
    Ok(())
}

#[meshsim::test(backend = "docker", timeout = "300s")]
async fn leftovers_of_a_killed_run_go_at_the_next_start(sim: meshsim::Sim) -> meshsim::Result<()> {
    let mut child: Child = probe("probe_waits_to_be_killed")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn probe");
    let pid = child.id();
    let lines = BufReader::new(child.stdout.take().expect("piped"));
    let mut ready = false;
    for line in lines.lines() {
        if line.expect("probe output").contains("PROBE-READY") {
            ready = true;
            break;
        }
    }
    assert!(ready, "probe ended before its simulation started");
    // SIGKILL: no destructor runs, the containers stay behind.
    child.kill().expect("kill probe");
    child.wait().expect("reap probe");
    let leaked = owned_by(pid);
    assert_eq!(
        leaked.len(),
        4,
        "3 containers and a network left: {leaked:?}"
    );
    // The next run's start removes them.
    let _sim = three_nodes(sim).await?;
    assert_eq!(
        owned_by(pid),
        Vec::<String>::new(),
        "not removed by the next start"
    );
    Ok(())
}
