//! Nothing leaks: every container and network carries labels naming its run and the process
//! that owns it. A run removes its own on stop, drop, panic and timeout; leftovers of a
//! process that is gone (killed with SIGKILL, say) are removed at the next run's start.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};

use super::{LABEL_MANAGED, LABEL_OWNER, LABEL_RUN};

/// `machine/pid/start-time` of this process.
pub(super) fn owner() -> String {
    let pid = std::process::id();
    format!(
        "{}/{pid}/{}",
        machine(),
        start_time(pid).unwrap_or_default()
    )
}

fn machine() -> String {
    std::fs::read_to_string("/etc/machine-id")
        .or_else(|_| std::fs::read_to_string("/proc/sys/kernel/random/boot_id"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The process's start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`), which
/// tells a live owner from a new process that reused its pid.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19).map(str::to_string)
}

/// Whether the process named by an owner label is gone (only judged for this machine).
fn owner_gone(label: &str) -> bool {
    let mut parts = label.split('/');
    let (Some(m), Some(pid), Some(start)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if m != machine() {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(pid) => start_time(pid).as_deref() != Some(start),
        Err(_) => false,
    }
}

/// Whether labels name an owner process that is gone.
fn orphaned(labels: Option<&HashMap<String, String>>) -> bool {
    labels
        .and_then(|l| l.get(LABEL_OWNER))
        .is_some_and(|o| owner_gone(o))
}

fn filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![label.to_string()])])
}

/// Removes everything of runs whose process is gone. Returns how many containers and
/// networks it removed.
pub(super) async fn reap_leftovers(docker: &Docker) -> (usize, usize) {
    let managed = format!("{LABEL_MANAGED}=true");
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filter(&managed))
                .build(),
        ))
        .await
        .unwrap_or_default();
    let mut removed = (0, 0);
    for c in containers {
        if let (true, Some(id)) = (orphaned(c.labels.as_ref()), c.id)
            && remove_container(docker, &id).await
        {
            removed.0 += 1;
        }
    }
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filter(&managed))
                .build(),
        ))
        .await
        .unwrap_or_default();
    for n in networks {
        if let (true, Some(id)) = (orphaned(n.labels.as_ref()), n.id)
            && docker.remove_network(&id).await.is_ok()
        {
            removed.1 += 1;
        }
    }
    if removed != (0, 0) {
        tracing::info!(target: "meshsim", "removed leftovers of killed runs: {} containers, {} networks", removed.0, removed.1);
    }
    removed
}

async fn remove_container(docker: &Docker, id: &str) -> bool {
    docker
        .remove_container(
            id,
            Some(
                RemoveContainerOptionsBuilder::default()
                    .force(true)
                    .v(true)
                    .build(),
            ),
        )
        .await
        .is_ok()
}

/// Removes every container and then the network of one run.
pub(super) async fn remove_run(docker: &Docker, run: &str, network: &str) {
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filter(&format!("{LABEL_RUN}={run}")))
                .build(),
        ))
        .await
        .unwrap_or_default();
    futures::future::join_all(
        containers
            .iter()
            .filter_map(|c| c.id.as_deref())
            .map(|id| remove_container(docker, id)),
    )
    .await;
    if let Err(e) = docker.remove_network(network).await {
        tracing::warn!(target: "meshsim", "could not remove network {network}: {e}");
    }
}

/// [`remove_run`] from synchronous code (a `Drop`), on a thread with its own runtime so it
/// works inside or outside one.
pub(super) fn remove_run_blocking(run: String, network: String) {
    let done = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for cleanup");
        rt.block_on(async {
            match super::connect().await {
                Ok(docker) => remove_run(&docker, &run, &network).await,
                Err(e) => eprintln!("meshsim: cannot clean up run {run}: {e}"),
            }
        });
    });
    let _ = done.join();
}
