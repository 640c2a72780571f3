//! Trace files: where they go, writing, and reading with precise errors.

use std::path::{Path, PathBuf};

use super::{FORMAT, Trace, VERSION};
use crate::error::TraceFileError;

/// The folder a test's files go in: `$MESHSIM_TRACE_DIR/<test>` when that variable is set,
/// else `<cargo target dir>/meshsim/<test>`. `::` in the test name becomes `.`.
pub fn trace_dir(test: &str) -> PathBuf {
    let root = match std::env::var_os("MESHSIM_TRACE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => target_dir().join("meshsim"),
    };
    let name: String = test
        .replace("::", ".")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    root.join(name)
}

/// Writes `bytes` to `path`, creating its folder: to `<path>.partial` first, then renamed, so
/// a reader never sees half a file (traces, viewers, exports).
pub(crate) fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Cargo's target folder: `CARGO_TARGET_DIR`, else the ancestor of the running executable
/// that holds cargo's `CACHEDIR.TAG`, else `./target`.
pub(crate) fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            if dir.join("CACHEDIR.TAG").is_file() {
                return dir.to_path_buf();
            }
        }
    }
    PathBuf::from("target")
}

impl Trace {
    /// The trace as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a trace always serialises")
    }

    /// Reads a trace from JSON text; `path` names the source in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Trace, TraceFileError> {
        #[derive(serde::Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let parse_err = |e: serde_json::Error| TraceFileError::Parse {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        };
        // Check the header first so an unsupported version is reported as such.
        let header: Header = serde_json::from_str(text).map_err(parse_err)?;
        if header.format != FORMAT {
            return Err(TraceFileError::Parse {
                path: path.to_path_buf(),
                line: 1,
                column: 1,
                message: format!("format is {:?}, expected {FORMAT:?}", header.format),
            });
        }
        if header.version != VERSION {
            return Err(TraceFileError::Version {
                path: path.to_path_buf(),
                found: header.version,
                supported: VERSION,
            });
        }
        serde_json::from_str(text).map_err(parse_err)
    }

    /// Writes the trace as JSON to `path`, creating folders as needed. Written to a temporary
    /// file first and renamed, so a reader never sees half a trace.
    pub fn save(&self, path: &Path) -> Result<(), TraceFileError> {
        write_whole(path, self.to_json().as_bytes()).map_err(|source| TraceFileError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a trace file.
    pub fn load(path: &Path) -> Result<Trace, TraceFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TraceFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text, path)
    }
}
