//! `_core.engine_probe` and `_core.engine_build`: the built-in engines, called directly (the plan
//! drives them in normal use), with the GIL released while the engine runs.

use super::interrupt;
use super::options::BuildArgs;
use super::results::BuiltImage;
use super::spec::Spec;
use super::to_py_err;
use crate::engines::{self, Request};
use crate::Error;
use pyo3::prelude::*;
use pyo3::types::PyDict;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(engine_probe, m)?)?;
    m.add_function(wrap_pyfunction!(engine_build, m)?)?;
    Ok(())
}

fn engine(name: &str) -> PyResult<std::sync::Arc<dyn engines::Engine>> {
    engines::builtin(name).ok_or_else(|| {
        let known: Vec<&str> = engines::BUILTIN.iter().map(|(n, _)| *n).collect();
        to_py_err(Error::build(format!(
            "no built-in engine {name:?} (built-in: {})",
            known.join(", ")
        )))
    })
}

/// None when the engine `name` can build here, else why not (one line, with the fix).
#[pyfunction]
pub fn engine_probe(py: Python<'_>, name: &str) -> PyResult<Option<String>> {
    let engine = engine(name)?;
    interrupt::run(py, || Ok(engine.probe().err()))
}

/// Builds `spec` as `image` with the engine `name` (pushing it with `push`); returns
/// `{"name": ..., "digest": ...}`.
#[pyfunction]
#[pyo3(signature = (name, spec, *, image, push, no_cache=false, **options))]
pub fn engine_build<'py>(
    py: Python<'py>,
    name: &str,
    spec: &Spec,
    image: &str,
    push: bool,
    no_cache: bool,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<BuiltImage> {
    let opts = BuildArgs::read(py, "engine_build()", options)?.options(true, name);
    let engine = engine(name)?;
    let progress = |_: engines::Progress<'_>| {};
    let built = interrupt::run(py, || {
        engine.build(&Request {
            spec: &spec.inner,
            image,
            options: &opts,
            push,
            no_cache,
            progress: &progress,
        })
    })?;
    Ok(built.into())
}
