//! Running a program (an engine's: docker, buildah, envd; uv for the native builder): output
//! streamed line by line (so steps show while they run), the last lines kept for the error,
//! credentials in URLs redacted from everything kept or reported, an optional timeout, and one
//! process-wide cancel flag that Ctrl-C sets and every run polls.

use crate::error::{Error, Result};
use crate::redact::redact_userinfo;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How many of the last output lines an error shows.
pub const TAIL_LINES: usize = 60;

/// Set when the user interrupts (Ctrl-C): every running program is stopped and none is started.
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Stops every program run through [`Run`] now and refuses new ones, until [`reset_cancel`].
pub fn cancel_all() {
    CANCELLED.store(true, Ordering::SeqCst);
}

pub fn reset_cancel() {
    CANCELLED.store(false, Ordering::SeqCst);
}

pub fn is_cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// How often a running program is checked for a cancel.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// Asks the program to stop (SIGTERM, so engines clean up: BuildKit cancels the build, buildah
/// removes its working container), then kills it if it is still there after a grace period.
fn stop(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        use rustix::process::{kill_process, Pid, Signal};
        if let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) {
            let _ = kill_process(pid, Signal::TERM);
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One run of a program.
#[derive(Clone, Debug)]
pub struct Run<'a> {
    /// For messages: the engine (`docker`) and the image being built.
    pub engine: &'a str,
    pub image: &'a str,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Added to the inherited environment (DOCKER_HOST, contexts and storage config pass through).
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
}

/// What a run that exited left behind.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// The last [`TAIL_LINES`] lines of stdout and stderr together, redacted.
    pub tail: Vec<String>,
}

impl Run<'_> {
    pub fn new<'a>(
        engine: &'a str,
        image: &'a str,
        program: impl Into<PathBuf>,
        args: Vec<String>,
    ) -> Run<'a> {
        Run {
            engine,
            image,
            program: program.into(),
            args,
            env: Vec::new(),
            timeout: None,
        }
    }

    /// The program and its subcommand (`docker build`, `buildah push`): what messages name. The
    /// other arguments can hold paths of secrets, so they are left out.
    pub fn what(&self) -> String {
        let name = self
            .program
            .file_name()
            .map_or_else(|| self.program.to_string_lossy(), |n| n.to_string_lossy());
        let mut what = name.into_owned();
        for sub in self.args.iter().filter(|a| is_subcommand(a)).take(2) {
            what.push(' ');
            what.push_str(sub);
        }
        what
    }

    /// Runs to the end; `on_line` sees every line (redacted) as it comes. Any exit status is
    /// returned: callers that only accept success use [`Run::checked`].
    pub fn run(&self, on_line: &mut dyn FnMut(&str)) -> Result<Finished> {
        if is_cancelled() {
            return Err(self.cancelled());
        }
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(&e))?;
        // Both pipes are read on their own threads: a program that fills one pipe while we wait on
        // the other would block forever.
        let (tx, rx) = mpsc::channel::<String>();
        let readers: Vec<_> = [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .map(|pipe| {
            let tx = tx.clone();
            std::thread::spawn(move || read_lines(pipe, &tx))
        })
        .collect();
        drop(tx);

        let deadline = self.timeout.map(|t| Instant::now() + t);
        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        loop {
            let wait = match deadline {
                None => CANCEL_POLL,
                Some(d) => d.saturating_duration_since(Instant::now()).min(CANCEL_POLL),
            };
            match rx.recv_timeout(wait) {
                // A program that keeps printing never times out the wait: check on every line too.
                Ok(_) if is_cancelled() => {
                    stop(&mut child);
                    return Err(self.cancelled());
                }
                Ok(line) => {
                    let line = redact_userinfo(&line);
                    on_line(&line);
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) if is_cancelled() => {
                    stop(&mut child);
                    return Err(self.cancelled());
                }
                Err(mpsc::RecvTimeoutError::Timeout) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    stop(&mut child);
                    let tail: Vec<String> = tail.into();
                    return Err(Error::build(format!(
                        "{}: {} of {} did not finish within {} s and was stopped{}",
                        self.engine,
                        self.what(),
                        self.image,
                        self.timeout.unwrap_or_default().as_secs(),
                        show_tail(&tail)
                    )));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        for r in readers {
            let _ = r.join();
        }
        let status = child
            .wait()
            .map_err(|e| Error::build(format!("{}: waiting for {}: {e}", self.engine, self.what())))?;
        Ok(Finished {
            status,
            tail: tail.into(),
        })
    }

    fn cancelled(&self) -> Error {
        Error::build(format!(
            "{}: {} of {} was interrupted",
            self.engine,
            self.what(),
            self.image
        ))
    }

    /// As [`Run::run`], but a non-zero exit is an `Error::Build` with the tail.
    pub fn checked(&self, on_line: &mut dyn FnMut(&str)) -> Result<Finished> {
        let done = self.run(on_line)?;
        if done.status.success() {
            return Ok(done);
        }
        Err(Error::build(format!(
            "{}: building {} failed: `{}` exited with {}{}",
            self.engine,
            redact_userinfo(self.image),
            self.what(),
            describe(done.status),
            show_tail(&done.tail)
        )))
    }

    /// Runs and collects every line (for short queries: versions, probes).
    pub fn output(&self) -> Result<(ExitStatus, Vec<String>)> {
        let mut lines = Vec::new();
        let done = self.run(&mut |l| lines.push(l.to_owned()))?;
        Ok((done.status, lines))
    }

    fn spawn_error(&self, e: &std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            return Error::build(format!(
                "{}: {} is not installed or not on PATH; {}",
                self.engine,
                self.program.display(),
                install_hint(&self.program)
            ));
        }
        Error::build(format!(
            "{}: cannot run {}: {e}",
            self.engine,
            self.program.display()
        ))
    }
}

/// Words that are subcommands of the engines' programs (so `what()` never picks a path or value).
fn is_subcommand(a: &str) -> bool {
    matches!(
        a,
        "build" | "buildx" | "bud" | "push" | "version" | "info" | "inspect" | "images"
    )
}

fn read_lines(pipe: Box<dyn Read + Send>, tx: &mpsc::Sender<String>) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                // A progress bar redraws with '\r': only the last state of the line matters.
                let text = text.trim_end_matches(['\n', '\r']);
                let text = text.rsplit('\r').next().unwrap_or(text);
                if tx.send(text.to_owned()).is_err() {
                    return;
                }
            }
        }
    }
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(c) => format!("status {c}"),
        None => format!("{status}"),
    }
}

fn show_tail(tail: &[String]) -> String {
    if tail.is_empty() {
        " (no output)".to_owned()
    } else {
        format!("; last lines of its output:\n{}", tail.join("\n"))
    }
}

/// How to get the program, by its name.
pub fn install_hint(program: &Path) -> &'static str {
    match program.file_name().and_then(|n| n.to_str()).unwrap_or("") {
        "docker" => "install it with `apt-get install -y docker.io` (Debian/Ubuntu) or Docker's own packages",
        "buildah" => "install it with `apt-get install -y buildah`",
        "podman" => "install it with `apt-get install -y podman`",
        "envd" => "install it with `pip install envd`",
        _ => "install it or put it on PATH",
    }
}

/// Every executable called `name` on `PATH`, in `PATH` order, each file once.
pub fn which_all(name: &str) -> Vec<PathBuf> {
    let Some(path) = std::env::var_os("PATH") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = Vec::new();
    let mut seen = Vec::new();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if !is_executable(&p) {
            continue;
        }
        // The same file through a symlinked folder (/bin -> /usr/bin) is one candidate.
        let real = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        if !seen.contains(&real) {
            seen.push(real);
            found.push(p);
        }
    }
    found
}

/// The first executable called `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    which_all(name).into_iter().next()
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> Run<'static> {
        Run::new("test", "img:1", "/bin/sh", vec!["-c".into(), script.into()])
    }

    #[test]
    fn lines_of_both_pipes_reach_the_callback_redacted() {
        let mut seen = Vec::new();
        let done = sh("echo out; echo err >&2; echo https://u:secret@h/x")
            .run(&mut |l| seen.push(l.to_owned()))
            .unwrap();
        assert!(done.status.success());
        seen.sort();
        assert_eq!(seen, ["err", "https://***@h/x", "out"]);
        assert!(!done.tail.join("\n").contains("secret"));
    }

    #[test]
    fn failure_names_engine_image_command_status_and_tail_only() {
        let run = Run::new(
            "test",
            "reg/img:1",
            "/bin/sh",
            vec![
                "-c".into(),
                "exec 2>&1; for i in $(seq 1 100); do echo line$i; done; echo https://u:pw@h >&2; exit 3"
                    .into(),
            ],
        );
        let e = run.checked(&mut |_| {}).unwrap_err().to_string();
        assert!(
            e.starts_with("test: building reg/img:1 failed: `sh` exited with status 3"),
            "{e}"
        );
        assert!(e.contains("\nline42\n") && !e.contains("line41"), "{e}");
        assert_eq!(e.lines().count(), 1 + TAIL_LINES, "{e}");
        assert!(e.contains("https://***@h") && !e.contains("pw"), "{e}");
    }

    #[test]
    fn missing_program_says_how_to_install() {
        let e = Run::new("docker", "i", "/nonexistent/docker", vec!["build".into()])
            .run(&mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not installed") && e.contains("apt-get install -y docker.io"),
            "{e}"
        );
    }

    #[test]
    fn timeout_stops_the_program() {
        let mut run = sh("echo started; sleep 30");
        run.timeout = Some(Duration::from_millis(300));
        let t0 = Instant::now();
        let e = run.run(&mut |_| {}).unwrap_err().to_string();
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(e.contains("did not finish") && e.contains("started"), "{e}");
    }

    #[test]
    fn what_names_program_and_subcommand_only() {
        let r = Run::new(
            "docker",
            "i",
            "/usr/bin/docker",
            vec![
                "--context".into(),
                "x".into(),
                "build".into(),
                "--secret".into(),
                "id=a,src=/tmp/s".into(),
            ],
        );
        assert_eq!(r.what(), "docker build");
    }

    #[test]
    fn carriage_returns_keep_the_last_state() {
        let mut seen = Vec::new();
        sh("printf 'a\\rb\\rc\\n'")
            .run(&mut |l| seen.push(l.to_owned()))
            .unwrap();
        assert_eq!(seen, ["c"]);
    }
}
