//! `_core.Spec.dockerfile` and `_core.write_context`: build contexts, with the GIL released.

use super::interrupt;
use super::spec::Spec;
use crate::build::{self, BuildOptions, CaBundle};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(write_context, m)?)?;
    m.add_function(wrap_pyfunction!(plan_context, m)?)?;
    Ok(())
}

/// A CA bundle argument: PEM text when the string holds a certificate, else a path.
fn ca_bundle(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<CaBundle>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Some(CaBundle::from_arg(&s.to_cow()?)));
    }
    Ok(Some(CaBundle::Path(obj.extract::<PathBuf>()?)))
}

pub(crate) fn options(
    loaded_modules: Option<Vec<PathBuf>>,
    imagespec_wheel: Option<PathBuf>,
    ca: Option<&Bound<'_, PyAny>>,
    buildkit: bool,
    engine: &str,
    flytekit_ids: Option<BTreeMap<String, String>>,
) -> PyResult<BuildOptions> {
    Ok(BuildOptions {
        imagespec_wheel,
        ca_bundle: ca_bundle(ca)?,
        buildkit,
        engine: engine.to_owned(),
        loaded_modules,
        flytekit_ids: flytekit_ids.unwrap_or_default(),
    })
}

/// Writes the build context of `spec` into `dir` (created if missing; it must be empty).
#[pyfunction]
#[pyo3(signature = (spec, dir, *, loaded_modules=None, imagespec_wheel=None, ca_bundle=None, buildkit=true, engine="docker", flytekit_ids=None))]
#[allow(clippy::too_many_arguments)]
pub fn write_context<'py>(
    py: Python<'py>,
    spec: &Spec,
    dir: PathBuf,
    loaded_modules: Option<Vec<PathBuf>>,
    imagespec_wheel: Option<PathBuf>,
    ca_bundle: Option<Bound<'py, PyAny>>,
    buildkit: bool,
    engine: &str,
    flytekit_ids: Option<BTreeMap<String, String>>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(
        loaded_modules,
        imagespec_wheel,
        ca_bundle.as_ref(),
        buildkit,
        engine,
        flytekit_ids,
    )?;
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
#[pyo3(signature = (spec, *, loaded_modules=None, imagespec_wheel=None, ca_bundle=None, buildkit=true, engine="docker", flytekit_ids=None))]
#[allow(clippy::too_many_arguments)]
pub fn plan_context<'py>(
    py: Python<'py>,
    spec: &Spec,
    loaded_modules: Option<Vec<PathBuf>>,
    imagespec_wheel: Option<PathBuf>,
    ca_bundle: Option<Bound<'py, PyAny>>,
    buildkit: bool,
    engine: &str,
    flytekit_ids: Option<BTreeMap<String, String>>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(
        loaded_modules,
        imagespec_wheel,
        ca_bundle.as_ref(),
        buildkit,
        engine,
        flytekit_ids,
    )?;
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
