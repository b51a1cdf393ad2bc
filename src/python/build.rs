//! `_core.Spec.dockerfile` and `_core.write_context`: build contexts, with the GIL released.

use super::interrupt;
use super::options::BuildArgs;
use super::spec::Spec;
use crate::build;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
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
) -> PyResult<Bound<'py, PyDict>> {
    let opts = BuildArgs::read(py, "write_context()", options)?.options(buildkit, engine);
    let m = interrupt::run(py, || build::write_context(&spec.inner, &opts, &dir))?;
    let out = PyDict::new(py);
    out.set_item("dir", m.dir)?;
    out.set_item("context", m.context)?;
    out.set_item("dockerfile", m.dockerfile)?;
    out.set_item("dockerfile_text", m.dockerfile_text)?;
    out.set_item("files", m.files)?;
    let secrets = PyList::empty(py);
    for s in m.secrets {
        let d = PyDict::new(py);
        d.set_item("id", s.id)?;
        d.set_item("path", s.path)?;
        secrets.append(d)?;
    }
    out.set_item("secrets", secrets)?;
    out.set_item("image", m.image)?;
    out.set_item("tag", m.tag)?;
    out.set_item("id", m.id)?;
    Ok(out)
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
) -> PyResult<Bound<'py, PyDict>> {
    let opts = BuildArgs::read(py, "plan_context()", options)?.options(buildkit, engine);
    let p = interrupt::run(py, || build::plan_context(&spec.inner, &opts))?;
    let out = PyDict::new(py);
    out.set_item("dockerfile_text", p.dockerfile_text)?;
    out.set_item("files", p.files)?;
    out.set_item("secrets", p.secret_ids)?;
    out.set_item("image", p.image)?;
    out.set_item("tag", p.tag)?;
    out.set_item("id", p.id)?;
    Ok(out)
}
