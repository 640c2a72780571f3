//! Logs are captured per test, each node's lines marked with its name, and saved next to the
//! trace when the test fails. (Its own test binary: a global subscriber installed by another
//! test, such as `#[traced_test]`, would take the logs instead.)

use meshsim::__private::{TestArgs, run_test};
use meshsim::{Topology, trace::trace_dir};

#[test]
fn failing_test_saves_node_logs() {
    let name = "logs_tests::failing";
    let _ = std::fs::remove_dir_all(trace_dir(name));
    let result = std::panic::catch_unwind(|| {
        run_test(name, TestArgs::default(), |sim| async move {
            let _sim = sim.start(Topology::line(3).unwrap()).await.unwrap();
            Err::<(), _>("deliberate failure")
        })
    });
    assert!(result.is_err());
    let log = std::fs::read_to_string(trace_dir(name).join("log.txt")).expect("log saved");
    for n in ["n0", "n1", "n2"] {
        assert!(
            log.contains(&format!("node{{name={n}}}")) && log.contains("node up"),
            "{log}"
        );
    }
}
