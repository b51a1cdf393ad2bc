//! How a blocking call releases the GIL and still answers Ctrl-C: the work runs on its own thread
//! while the calling thread, holding the GIL now and then, lets Python's signal handlers run.

use super::to_py_err;
use crate::error::{Error, Result};
use crate::support::exec::{cancel_all, reset_cancel};
use pyo3::prelude::*;
use std::future::Future;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use std::time::Duration;

/// How long the work runs between two looks at Python's signals.
const STEP: Duration = Duration::from_millis(100);

/// Runs `work` without the GIL. On Ctrl-C every engine program is stopped (none is started after,
/// and a plan fails the builds it has not started), the work is left to unwind (temporary folders
/// are removed, no tag is pushed by a build that did not finish), and then KeyboardInterrupt is
/// raised. Work that starts no program simply finishes first.
pub(crate) fn run<T: Send>(py: Python<'_>, work: impl FnOnce() -> Result<T> + Send) -> PyResult<T> {
    run_stopping(py, work, || {})
}

/// Runs `fut` on the shared runtime as [`run`] runs its work; on Ctrl-C the task is dropped.
pub(crate) fn block_on<T: Send + 'static>(
    py: Python<'_>,
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> PyResult<T> {
    let rt = crate::support::runtime::runtime().map_err(to_py_err)?;
    let task = rt.spawn(fut);
    let abort = task.abort_handle();
    run_stopping(
        py,
        || match rt.block_on(task) {
            Ok(result) => result,
            Err(e) => Err(Error::Registry(format!("the check failed: {e}"))),
        },
        || abort.abort(),
    )
}

/// [`run`], calling `stop` too on Ctrl-C.
fn run_stopping<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> Result<T> + Send,
    stop: impl Fn(),
) -> PyResult<T> {
    let (tx, rx) = mpsc::channel();
    // A Mutex makes the receiver shareable with the GIL-free closure below.
    let rx = Mutex::new(rx);
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            let _ = tx.send(work());
        });
        let mut interrupted: Option<PyErr> = None;
        loop {
            let next = py.detach(|| rx.lock().unwrap_or_else(|e| e.into_inner()).recv_timeout(STEP));
            match next {
                Ok(result) => {
                    return match interrupted {
                        Some(e) => {
                            reset_cancel();
                            Err(e)
                        }
                        None => result.map_err(to_py_err),
                    };
                }
                // The work panicked: the panic goes on to Python (as PanicException).
                Err(RecvTimeoutError::Disconnected) => match worker.join() {
                    Err(panic) => std::panic::resume_unwind(panic),
                    Ok(()) => unreachable!("the work sends its result before it ends"),
                },
                Err(RecvTimeoutError::Timeout) => {
                    if interrupted.is_none() {
                        if let Err(e) = py.check_signals() {
                            cancel_all();
                            stop();
                            interrupted = Some(e);
                        }
                    }
                }
            }
        }
    })
}
