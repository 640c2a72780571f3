//! `meshsim view --serve`: the viewer page over HTTP on 127.0.0.1, for browsers that will not
//! open local files, or a machine reached through an SSH tunnel.
//!
//! One static page needs no web framework: this answers `GET /` with the page and anything
//! else with 404, one connection at a time, until the process is interrupted. It listens on
//! the loopback interface only, reads at most 8 KiB of a request, and answers only requests
//! addressed to `127.0.0.1:<port>` or `localhost:<port>` (no DNS rebinding).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

/// The page may run its own inline script and styles and load nothing from anywhere: the
/// browser enforces that the viewer makes no network access.
const CSP: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";

/// Serves `html` on `127.0.0.1:port` (any free port when 0) until interrupted.
pub fn serve(html: String, port: u16, trace: &Path) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let addr = listener.local_addr()?;
    println!(
        "serving the viewer of {} at http://{addr}/ (Ctrl-C to stop)",
        trace.display()
    );
    // Only these Host headers are answered: a page elsewhere that rebinds its own name to
    // 127.0.0.1 cannot read the trace.
    let hosts = [format!("{addr}"), format!("localhost:{}", addr.port())];
    std::io::stdout().flush()?;
    for stream in listener.incoming() {
        match stream {
            // A client that misbehaves only loses its own request.
            Ok(s) => {
                if let Err(e) = answer(s, &html, &hosts) {
                    eprintln!("meshsim: a request failed: {e}");
                }
            }
            Err(e) => eprintln!("meshsim: accept failed: {e}"),
        }
    }
    Ok(())
}

/// The most of a request head read: a client cannot make the server buffer more.
const MAX_HEAD: u64 = 8 * 1024;

fn answer(stream: TcpStream, html: &str, hosts: &[String]) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?.take(MAX_HEAD));
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Read the rest of the head (bounded) so the client sees a clean close.
    let mut host = None;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("host")
        {
            host = Some(value.trim().to_string());
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let host_ok = host.is_some_and(|h| hosts.contains(&h));
    let (status, body, kind) = match (method, target) {
        _ if !host_ok => ("403 Forbidden", "unexpected Host\n", "text/plain"),
        ("GET" | "HEAD", "/" | "/index.html") => ("200 OK", html, "text/html; charset=utf-8"),
        ("GET" | "HEAD", _) => ("404 Not Found", "not found\n", "text/plain"),
        _ => ("405 Method Not Allowed", "only GET\n", "text/plain"),
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nContent-Security-Policy: {CSP}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        out.write_all(body.as_bytes())?;
    }
    out.flush()
}
