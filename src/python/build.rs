//! `_core.Spec.dockerfile` and `_core.write_context`: build contexts, with the GIL released.

use super::interrupt;
use super::options::BuildArgs;
use super::results::{ContextManifest, ContextPlan};
use super::spec::Spec;
use crate::dockerfile;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(write_context, m)?)?;
    m.add_function(wrap_pyfunction!(plan_context, m)?)?;
    Ok(())
}

/// Writes the build context of `spec` into `dir` (created if missing; it must be empty).
#[pyfunction]
#[pyo3(signature = (spec, dir, *, buildkit=true, engine="docker", **options))]
pub fn write_context<'py>(
    py: Python<'py>,
    spec: &Spec,
    dir: PathBuf,
    buildkit: bool,
    engine: &str,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<ContextManifest> {
    let opts = BuildArgs::read(py, "write_context()", options)?.options(buildkit, engine);
    let m = interrupt::run(py, || dockerfile::write_context(&spec.inner, &opts, &dir))?;
    Ok(m.into())
}

/// The Dockerfile, file list and secret ids `write_context` would give, without writing anything.
#[pyfunction]
#[pyo3(signature = (spec, *, buildkit=true, engine="docker", **options))]
pub fn plan_context<'py>(
    py: Python<'py>,
    spec: &Spec,
    buildkit: bool,
    engine: &str,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<ContextPlan> {
    let opts = BuildArgs::read(py, "plan_context()", options)?.options(buildkit, engine);
    let p = interrupt::run(py, || dockerfile::plan_context(&spec.inner, &opts))?;
    Ok(p.into())
}
