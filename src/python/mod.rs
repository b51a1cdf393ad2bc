//! The `imagespec._core` extension: conversion and error mapping only; the logic is in the core.

mod build;
mod convert;
mod engines;
mod plan;
mod registry;
mod spec;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    imagespec._core,
    ImageSpecError,
    PyException,
    "Base class of every imagespec error."
);
create_exception!(
    imagespec._core,
    SpecError,
    ImageSpecError,
    "A spec field or spec file has a value that is not allowed."
);
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

/// Maps a core error to its Python exception, with `field`, `path`, `line`, `column` attributes.
pub(crate) fn to_py_err(e: crate::Error) -> PyErr {
    Python::attach(|py| {
        let err = match &e {
            crate::Error::Spec { .. } | crate::Error::Yaml { .. } => SpecError::new_err(e.to_string()),
            crate::Error::Source { .. } => SourceError::new_err(e.to_string()),
            crate::Error::Reference(_) | crate::Error::Registry(_) => RegistryError::new_err(e.to_string()),
            crate::Error::Build(_) => BuildError::new_err(e.to_string()),
        };
        let value = err.value(py);
        let _ = value.setattr("field", e.field());
        match &e {
            crate::Error::Yaml {
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
            | crate::Error::Reference(_)
            | crate::Error::Registry(_)
            | crate::Error::Build(_) => {}
        }
        err
    })
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("RECIPE_VERSION", crate::RECIPE_VERSION)?;
    m.add("FIELDS", crate::spec::FIELDS.to_vec())?;
    m.add("BUILTIN_ENGINES", crate::engines::BUILTIN.to_vec())?;
    m.add("ImageSpecError", py.get_type::<ImageSpecError>())?;
    m.add("SpecError", py.get_type::<SpecError>())?;
    m.add("SourceError", py.get_type::<SourceError>())?;
    m.add("RegistryError", py.get_type::<RegistryError>())?;
    m.add("BuildError", py.get_type::<BuildError>())?;
    registry::register(m)?;
    m.add_class::<spec::Spec>()?;
    m.add_function(wrap_pyfunction!(spec::load_yaml, m)?)?;
    build::register(m)?;
    plan::register(m)?;
    engines::register(m)?;
    Ok(())
}
