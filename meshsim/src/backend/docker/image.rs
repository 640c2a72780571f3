//! The agent image: built on first use from nothing (no registry needed), tagged by the hash
//! of what went into it so unchanged code is never rebuilt, in this process or another.
//!
//! 1. the static `meshsim-agent` binary, built with cargo (or taken from `MESHSIM_AGENT_BIN`);
//! 2. the base with iptables and tc: `meshsim-base:<hash of build-base.sh>`, imported from
//!    Debian packages by `images/build-base.sh` (or built from `images/Dockerfile.base`
//!    where there is no apt but a registry);
//! 3. `images/Dockerfile` on that base, as `meshsim-agent:<hash>`.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, CreateImageOptionsBuilder};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::LABEL_MANAGED;
use crate::error::{Error, Result};

/// The Dockerfile and base script, compiled in so the hash covers them.
const DOCKERFILE: &str = include_str!("../../../../images/Dockerfile");
const DOCKERFILE_BASE: &str = include_str!("../../../../images/Dockerfile.base");
const BUILD_BASE: &str = include_str!("../../../../images/build-base.sh");

fn fail(step: &'static str, reason: impl std::fmt::Display) -> Error {
    Error::Image {
        step,
        reason: reason.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Where meshsim keeps its agent build: `<target>/meshsim-agent`.
fn build_dir() -> PathBuf {
    crate::trace::target_dir().join("meshsim-agent")
}

/// The image to run, building whatever is missing. Holds a file lock meanwhile, so parallel
/// test processes build once.
pub(super) async fn ensure(docker: &Docker) -> Result<String> {
    let dir = build_dir();
    std::fs::create_dir_all(&dir).map_err(|e| fail("create build directory", e))?;
    let lock = File::create(dir.join("image.lock")).map_err(|e| fail("lock", e))?;
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .expect("lock task")
        .map_err(|e| fail("lock", e))?;
    let binary = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || agent_binary(&dir))
            .await
            .expect("build task")?
    };
    let base = base_image(docker, &dir).await?;
    let bin = std::fs::read(&binary).map_err(|e| fail("read agent binary", e))?;
    let mut h = Sha256::new();
    h.update(&bin);
    h.update(DOCKERFILE);
    h.update(&base);
    let tag = format!("meshsim-agent:{}", hex(&h.finalize()));
    if docker.inspect_image(&tag).await.is_err() {
        eprintln!("meshsim: building image {tag} on {base}");
        build_agent_image(docker, &tag, &base, bin).await?;
    }
    drop(lock);
    Ok(tag)
}

/// Builds (or finds) the static agent binary.
fn agent_binary(dir: &Path) -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("MESHSIM_AGENT_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .filter(|w| w.join("meshsim-agent/Cargo.toml").is_file())
        .ok_or_else(|| {
            fail(
                "find meshsim-agent",
                "its source is not beside meshsim's; build it yourself (static: \
                 RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target \
                 <arch>-unknown-linux-gnu -p meshsim-agent) and set MESHSIM_AGENT_BIN",
            )
        })?;
    // The engine runs containers of the host's architecture (x86_64, aarch64, ...), and
    // the base image holds the host's Debian packages: build the agent for the same.
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    eprintln!("meshsim: building the static meshsim-agent for the Docker image (cargo, release)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "meshsim-agent",
            "--target",
            &target,
        ])
        .arg("--target-dir")
        .arg(dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .map_err(|e| fail("build meshsim-agent", format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(fail(
            "build meshsim-agent",
            format!("cargo build failed ({status}); its output is above"),
        ));
    }
    Ok(dir.join(&target).join("release/meshsim-agent"))
}

/// `meshsim-base:<hash>`, imported from Debian packages if missing.
async fn base_image(docker: &Docker, dir: &Path) -> Result<String> {
    if let Ok(base) = std::env::var("MESHSIM_BASE_IMAGE") {
        return Ok(base);
    }
    let mut h = Sha256::new();
    h.update(BUILD_BASE);
    h.update(DOCKERFILE_BASE);
    let tag = hex(&h.finalize());
    let image = format!("meshsim-base:{tag}");
    if docker.inspect_image(&image).await.is_ok() {
        return Ok(image);
    }
    let has_apt = Command::new("apt-get").arg("--version").output().is_ok();
    if has_apt {
        eprintln!("meshsim: assembling the agent base image from Debian packages (once)");
        let script = dir.join("build-base.sh");
        let rootfs = dir.join("base-rootfs.tar");
        std::fs::write(&script, BUILD_BASE).map_err(|e| fail("write build-base.sh", e))?;
        let (sh, out_path) = (script.clone(), rootfs.clone());
        let out = tokio::task::spawn_blocking(move || {
            Command::new("bash").arg(&sh).arg(&out_path).status()
        })
        .await
        .expect("base build task")
        .map_err(|e| fail("assemble base", format!("cannot run bash: {e}")))?;
        if !out.success() {
            return Err(fail(
                "assemble base",
                format!("images/build-base.sh failed ({out}); its output is above"),
            ));
        }
        let tar = std::fs::read(&rootfs).map_err(|e| fail("read base root file system", e))?;
        let _ = std::fs::remove_file(&rootfs);
        let opts = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo("meshsim-base")
            .tag(&tag)
            .build();
        let mut stream =
            docker.create_image(Some(opts), Some(bollard::body_full(tar.into())), None);
        while let Some(item) = stream.next().await {
            item.map_err(|e| fail("import base", e))?;
        }
    } else {
        eprintln!(
            "meshsim: no apt-get here; building the base from images/Dockerfile.base (needs a registry)"
        );
        build(docker, &image, DOCKERFILE_BASE, &HashMap::new(), &[]).await?;
    }
    Ok(image)
}

async fn build_agent_image(docker: &Docker, tag: &str, base: &str, bin: Vec<u8>) -> Result<()> {
    let args = HashMap::from([("BASE".to_string(), base.to_string())]);
    build(
        docker,
        tag,
        DOCKERFILE,
        &args,
        &[("meshsim-agent", bin, 0o755)],
    )
    .await
}

/// Builds `dockerfile` with `files` as its context (the classic builder: no BuildKit needed).
async fn build(
    docker: &Docker,
    tag: &str,
    dockerfile: &str,
    args: &HashMap<String, String>,
    files: &[(&str, Vec<u8>, u32)],
) -> Result<()> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8], mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        tar.append_data(&mut header, name, data)
    };
    add("Dockerfile", dockerfile.as_bytes(), 0o644).map_err(|e| fail("pack context", e))?;
    for (name, data, mode) in files {
        add(name, data, *mode).map_err(|e| fail("pack context", e))?;
    }
    let context = tar.into_inner().map_err(|e| fail("pack context", e))?;
    let labels = HashMap::from([(LABEL_MANAGED.to_string(), "true".to_string())]);
    let opts = BuildImageOptionsBuilder::default()
        .t(tag)
        .dockerfile("Dockerfile")
        .buildargs(args)
        .labels(&labels)
        .rm(true)
        .forcerm(true)
        .build();
    let mut stream = docker.build_image(opts, None, Some(bollard::body_full(context.into())));
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(s) = info
                    .stream
                    .as_deref()
                    .map(str::trim_end)
                    .filter(|s| !s.is_empty())
                {
                    eprintln!("meshsim: build: {s}");
                }
            }
            Err(e) => return Err(fail("docker build", e)),
        }
    }
    docker.inspect_image(tag).await.map(|_| ()).map_err(|e| {
        fail(
            "docker build",
            format!("no image {tag} after the build: {e}"),
        )
    })
}
