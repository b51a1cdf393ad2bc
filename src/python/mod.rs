//! The `imagespec._core` extension: conversion and error mapping only; the logic is in the core.

mod build;
mod convert;
mod engines;
mod interrupt;
mod options;
mod plan;
mod registry;
mod results;
mod spec;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyTuple, PyType};

create_exception!(
    imagespec._core,
    ImageSpecError,
    PyException,
    "Base class of every imagespec error."
);
/// `SpecError` and `UnknownFieldError` have two bases each (ours, and the builtin flytekit raises
/// for the same input: ValueError, TypeError), which `create_exception!` cannot make: they are
/// made with `type()` when the module loads.
static SPEC_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static UNKNOWN_FIELD_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn make_type<'py>(
    py: Python<'py>,
    name: &str,
    bases: Bound<'py, PyTuple>,
    doc: &str,
) -> PyResult<Bound<'py, PyType>> {
    let ns = pyo3::types::PyDict::new(py);
    ns.set_item("__module__", "imagespec._core")?;
    ns.set_item("__doc__", doc)?;
    Ok(py
        .get_type::<PyType>()
        .call1((name, bases, ns))?
        .cast_into::<PyType>()?)
}

fn spec_error(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    SPEC_ERROR
        .get_or_try_init(py, || {
            let bases = PyTuple::new(
                py,
                [py.get_type::<ImageSpecError>(), py.get_type::<PyValueError>()],
            )?;
            let doc =
                "A spec field or spec file has a value that is not allowed (a ValueError, as in flytekit).";
            make_type(py, "SpecError", bases, doc).map(Bound::unbind)
        })
        .map(|t| t.bind(py))
}

fn unknown_field_error(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    UNKNOWN_FIELD_ERROR
        .get_or_try_init(py, || {
            let bases = PyTuple::new(py, [spec_error(py)?.clone(), py.get_type::<PyTypeError>()])?;
            let doc = "A keyword that is no spec field (a TypeError, as for any function, and a SpecError).";
            make_type(py, "UnknownFieldError", bases, doc).map(Bound::unbind)
        })
        .map(|t| t.bind(py))
}
create_exception!(
    imagespec._core,
    SourceError,
    ImageSpecError,
    "A file or folder the spec names is missing or unreadable."
);
create_exception!(
    imagespec._core,
    RegistryError,
    ImageSpecError,
    "A registry check could not be made: a malformed reference or an unusable option."
);

create_exception!(
    imagespec._core,
    BuildError,
    ImageSpecError,
    "An image cannot be built as asked (an option the engine lacks, a value a Dockerfile cannot hold)."
);

/// What every imagespec error says about where it is: the spec field, the file, its line and column.
const LOCATION: [&str; 4] = ["field", "path", "line", "column"];

/// Maps a core error to its Python exception, with the [`LOCATION`] attributes it knows (the
/// others are the class's None).
pub(crate) fn to_py_err(e: crate::Error) -> PyErr {
    Python::attach(|py| {
        let typed = |t: PyResult<&Bound<'_, PyType>>| match t {
            Ok(t) => PyErr::from_type(t.clone(), e.to_string()),
            Err(err) => err,
        };
        let err = match &e {
            crate::Error::Spec { .. } | crate::Error::Invalid { .. } | crate::Error::File { .. } => {
                typed(spec_error(py))
            }
            crate::Error::UnknownField { .. } => typed(unknown_field_error(py)),
            crate::Error::Source { .. } => SourceError::new_err(e.to_string()),
            crate::Error::Reference(_) | crate::Error::Registry(_) => RegistryError::new_err(e.to_string()),
            crate::Error::Build(_) => BuildError::new_err(e.to_string()),
        };
        let value = err.value(py);
        if let Some(field) = e.field() {
            let _ = value.setattr("field", field);
        }
        match &e {
            crate::Error::File {
                path, line, column, ..
            } => {
                let _ = value.setattr("path", path);
                let _ = value.setattr("line", line);
                let _ = value.setattr("column", column);
            }
            crate::Error::Source { path, .. } => {
                let _ = value.setattr("path", path.to_string_lossy());
            }
            crate::Error::Spec { .. }
            | crate::Error::Invalid { .. }
            | crate::Error::UnknownField { .. }
            | crate::Error::Reference(_)
            | crate::Error::Registry(_)
            | crate::Error::Build(_) => {}
        }
        err
    })
}

/// The cache folder (`$IMAGESPEC_CACHE_DIR`, else `$XDG_CACHE_HOME/imagespec`, else
/// `~/.cache/imagespec`); None without a home.
#[pyfunction]
fn cache_root() -> Option<std::path::PathBuf> {
    crate::support::dirs::cache_root()
}

/// `[registry/]path[:tag]` split as docker splits a reference (the registry only when the first part
/// has a '.' or a ':' or is `localhost`; a digest is left out).
#[pyfunction]
fn split_name(reference: &str) -> (Option<String>, String, Option<String>) {
    let parts = crate::reference::split_name(reference);
    (
        parts.registry.map(str::to_owned),
        parts.path.to_owned(),
        parts.tag.map(str::to_owned),
    )
}

/// The docker client the engine adapter would use (`$IMAGESPEC_DOCKER`, else the first one on PATH
/// that answers, BuildKit-capable preferred), for the commands Python runs (`run`, `inspect`).
#[pyfunction]
fn docker_client(py: Python<'_>) -> PyResult<std::path::PathBuf> {
    interrupt::run(py, || {
        let candidates = crate::engines::docker::candidates(None)?;
        crate::engines::docker::detect(&candidates).map(|c| c.path)
    })
}

/// "Did you mean 'packages'? Valid fields: ..." for a keyword that is no field.
#[pyfunction]
fn suggest_field(name: &str) -> String {
    crate::spec::field_hint(name)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("RECIPE_VERSION", crate::RECIPE_VERSION)?;
    m.add("FIELDS", crate::spec::FIELDS.to_vec())?;
    m.add("BUILTIN_ENGINES", crate::engines::BUILTIN.to_vec())?;
    m.add("DISTRIBUTION", crate::runtime::DISTRIBUTION)?;
    m.add("DEFAULT_NAME", crate::spec::DEFAULT_NAME)?;
    m.add("IMAGE_ID_VAR", crate::dockerfile::IMAGE_ID_VAR)?;
    m.add("OWN_ID_VAR", crate::dockerfile::OWN_ID_VAR)?;
    m.add("RUNTIME_OPTION", crate::runtime::RUNTIME_OPTION)?;
    // Where `pip install imagespec-build[native]` put uv: the native builder runs it from there.
    if let Ok(prefix) = py.import("sys").and_then(|s| s.getattr("prefix")) {
        if let Ok(p) = prefix.extract::<std::path::PathBuf>() {
            let _ = crate::engines::native::uv::PYTHON_PREFIX.set(p);
        }
    }
    // Class attributes, so that an error raised by Python code has them too.
    let base = py.get_type::<ImageSpecError>();
    for name in LOCATION {
        base.setattr(name, py.None())?;
    }
    m.add("ImageSpecError", base)?;
    m.add("SpecError", spec_error(py)?)?;
    m.add("UnknownFieldError", unknown_field_error(py)?)?;
    m.add("suggest_field", wrap_pyfunction!(suggest_field, m)?)?;
    m.add("cache_root", wrap_pyfunction!(cache_root, m)?)?;
    m.add("split_name", wrap_pyfunction!(split_name, m)?)?;
    m.add("docker_client", wrap_pyfunction!(docker_client, m)?)?;
    m.add("SourceError", py.get_type::<SourceError>())?;
    m.add("RegistryError", py.get_type::<RegistryError>())?;
    m.add("BuildError", py.get_type::<BuildError>())?;
    registry::register(m)?;
    m.add_class::<spec::Spec>()?;
    m.add_function(wrap_pyfunction!(spec::load_yaml, m)?)?;
    m.add_function(wrap_pyfunction!(spec::read_script, m)?)?;
    build::register(m)?;
    plan::register(m)?;
    engines::register(m)?;
    results::register(m)?;
    Ok(())
}
