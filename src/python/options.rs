//! Keyword options, read into typed structs: `BuildArgs`, what every build entry point takes
//! (the stub's `BuildArgs`), and the reader each entry point's options go through.

use crate::dockerfile::{BuildOptions, CaBundle};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The `**options` of one call, taken out one by one; a keyword nobody takes is refused, as
/// Python refuses it for any function, and a wrong value is told as PyO3 tells it for an argument.
pub(crate) struct Keywords<'py> {
    function: &'static str,
    left: Bound<'py, PyDict>,
}

impl<'py> Keywords<'py> {
    /// `function` names the call in the error, as Python does: `check()`, `Spec.dockerfile()`.
    pub fn new(
        py: Python<'py>,
        function: &'static str,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Self> {
        let left = match kwargs {
            Some(d) => d.copy()?,
            None => PyDict::new(py),
        };
        Ok(Keywords { function, left })
    }

    /// The value given for `key`, else `default`.
    pub fn take<T>(&mut self, key: &str, default: T) -> PyResult<T>
    where
        T: for<'a> FromPyObject<'a, 'py, Error = PyErr>,
    {
        let Some(value) = self.take_object(key)? else {
            return Ok(default);
        };
        value.extract::<T>().inspect_err(|e| {
            // As PyO3 notes which argument a wrong value was given for (Python 3.11 and later).
            let note = format!("while processing '{key}'");
            let _ = e.value(self.left.py()).call_method1("add_note", (note,));
        })
    }

    /// The object given for `key`, if any.
    pub fn take_object(&mut self, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let value = self.left.get_item(key)?;
        if value.is_some() {
            self.left.del_item(key)?;
        }
        Ok(value)
    }

    /// Refuses whatever keyword was not taken.
    pub fn finish(self) -> PyResult<()> {
        match self.left.keys().iter().next() {
            Some(key) => Err(PyTypeError::new_err(format!(
                "{} got an unexpected keyword argument '{key}'",
                self.function
            ))),
            None => Ok(()),
        }
    }
}

/// What a build puts in the image besides the spec: the keyword options of `write_context`,
/// `plan_context`, `Spec.dockerfile`, `engine_build` and `run_plan`. Which engine a Dockerfile is
/// for (`buildkit`, `engine`) is no part of it: an engine sets that itself.
pub(crate) struct BuildArgs {
    loaded_modules: Option<Vec<PathBuf>>,
    imagespec_wheel: Option<PathBuf>,
    ca_bundle: Option<CaBundle>,
    flytekit_ids: Option<BTreeMap<String, String>>,
}

impl BuildArgs {
    pub fn take(kw: &mut Keywords<'_>) -> PyResult<Self> {
        Ok(BuildArgs {
            loaded_modules: kw.take("loaded_modules", None)?,
            imagespec_wheel: kw.take("imagespec_wheel", None)?,
            ca_bundle: ca_bundle(kw.take_object("ca_bundle")?)?,
            flytekit_ids: kw.take("flytekit_ids", None)?,
        })
    }

    /// Reads `kwargs` when they are a build's options and nothing else.
    pub fn read<'py>(
        py: Python<'py>,
        function: &'static str,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Self> {
        let mut kw = Keywords::new(py, function, kwargs)?;
        let args = BuildArgs::take(&mut kw)?;
        kw.finish()?;
        Ok(args)
    }

    /// The core's options for a Dockerfile made for `engine` (an engine build resets both).
    pub fn options(self, buildkit: bool, engine: &str) -> BuildOptions {
        BuildOptions {
            imagespec_wheel: self.imagespec_wheel,
            ca_bundle: self.ca_bundle,
            buildkit,
            engine: engine.to_owned(),
            loaded_modules: self.loaded_modules,
            flytekit_ids: self.flytekit_ids.unwrap_or_default(),
        }
    }
}

/// A CA bundle argument: PEM text when the string holds a certificate, else a path.
fn ca_bundle(obj: Option<Bound<'_, PyAny>>) -> PyResult<Option<CaBundle>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Some(CaBundle::from_arg(&s.to_cow()?)));
    }
    Ok(Some(CaBundle::Path(obj.extract::<PathBuf>()?)))
}
