//! `_core.run_plan`: the build plan, with builders written in Python called back under the GIL.

use super::interrupt;
use super::options::{BuildArgs, Keywords};
use super::results;
use super::spec::Spec;
use crate::dockerfile::BuildOptions;
use crate::engines::Request;
use crate::error::{Error, Result};
use crate::plan::{self, Builder, Builders, EngineBuilder, Event, PlanOptions};
use crate::spec::Spec as CoreSpec;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::sync::Arc;
use std::time::Duration;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run_plan, m)?)?;
    Ok(())
}

/// A builder object from Python: `build_image(spec) -> str | None`, optionally
/// `should_build(spec) -> bool`, given the `ImageSpec` made by `from_core`.
struct PyBuilder {
    name: String,
    obj: Py<PyAny>,
    from_core: Py<PyAny>,
    has_should_build: bool,
}

impl PyBuilder {
    fn call(&self, method: &str, spec: &CoreSpec) -> Result<Py<PyAny>> {
        Python::attach(|py| {
            let py_spec = self
                .from_core
                .call1(py, (Spec::wrap(spec.clone()),))
                .and_then(|s| self.obj.call_method1(py, method, (s,)));
            py_spec.map_err(|e| {
                Error::build(format!(
                    "builder {:?}: {method} raised {}",
                    self.name,
                    describe(py, &e)
                ))
            })
        })
    }
}

/// `Type: message`, without the traceback.
fn describe(py: Python<'_>, e: &PyErr) -> String {
    let name = e
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    format!("{name}: {}", e.value(py))
}

impl Builder for PyBuilder {
    fn should_build(&self, spec: &CoreSpec) -> Option<Result<bool>> {
        if !self.has_should_build {
            return None;
        }
        Some(self.call("should_build", spec).and_then(|v| {
            Python::attach(|py| {
                v.bind(py).is_truthy().map_err(|e| {
                    Error::build(format!(
                        "builder {:?}: should_build: {}",
                        self.name,
                        describe(py, &e)
                    ))
                })
            })
        }))
    }

    fn build(&self, request: &Request<'_>) -> Result<Option<String>> {
        let out = self.call("build_image", request.spec)?;
        Python::attach(|py| {
            let out = out.bind(py);
            if out.is_none() {
                return Ok(None);
            }
            out.extract::<String>().map(Some).map_err(|_| {
                Error::build(format!(
                    "builder {:?}: build_image must return the image's name (a str) or None",
                    self.name
                ))
            })
        })
    }
}

/// The plan's own keyword options (beside the build's): the stub's `PlanArgs`.
fn plan_options(kw: &mut Keywords<'_>, build: BuildOptions) -> PyResult<PlanOptions> {
    let check_timeout: f64 = kw.take("check_timeout", 10.0)?;
    if !check_timeout.is_finite() || check_timeout <= 0.0 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "check_timeout must be a positive number of seconds",
        ));
    }
    Ok(PlanOptions {
        build,
        max_parallel: kw.take::<usize>("max_parallel", 2)?.max(1),
        assume_present: kw.take("assume_present", false)?,
        no_cache: kw.take("no_cache", false)?,
        lock_dir: kw.take("lock_dir", None)?,
        check_timeout: Duration::from_secs_f64(check_timeout),
        builder: kw.take("builder", None)?,
        engines: match kw.take::<Option<String>>("engines", None)? {
            Some(text) => crate::engines::pool::parse_pool(&text).map_err(super::to_py_err)?,
            None => Vec::new(),
        },
    })
}

/// Runs the plan for `specs`. `builders` are `(name, priority, builder)`: `builder` is the name of
/// a built-in engine (a str) or a Python object with `build_image`. One `ImageResult` per image,
/// bases first.
#[pyfunction]
#[pyo3(signature = (specs, builders, *, from_core, on_event=None, **options))]
pub fn run_plan<'py>(
    py: Python<'py>,
    specs: Vec<PyRef<'py, Spec>>,
    builders: Vec<(String, i32, Bound<'py, PyAny>)>,
    from_core: Bound<'py, PyAny>,
    on_event: Option<Bound<'py, PyAny>>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Vec<results::ImageResult>> {
    let mut kw = Keywords::new(py, "run_plan()", options)?;
    let build = BuildArgs::take(&mut kw)?.options(true, "docker");
    let options = plan_options(&mut kw, build)?;
    kw.finish()?;
    let mut registry = Builders::default();
    for (name, priority, obj) in builders {
        let builder: Arc<dyn Builder> = if let Ok(engine) = obj.cast::<PyString>() {
            let engine = engine.to_cow()?;
            // A built-in name this build has no engine for is left out (a spec naming it is told
            // it is not registered).
            let Some(e) = crate::engines::builtin(&engine) else {
                continue;
            };
            Arc::new(EngineBuilder(e))
        } else {
            Arc::new(PyBuilder {
                name: name.clone(),
                has_should_build: obj.hasattr("should_build")?,
                obj: obj.unbind(),
                from_core: from_core.clone().unbind(),
            })
        };
        registry.add(&name, priority, builder);
    }
    let specs: Vec<CoreSpec> = specs.iter().map(|s| s.inner.clone()).collect();
    let callback = on_event.map(Bound::unbind);
    let emit = |e: Event| {
        if let Some(cb) = &callback {
            Python::attach(|py| {
                let result = Bound::new(py, results::Event::from(e)).and_then(|e| cb.call1(py, (e,)));
                if let Err(err) = result {
                    err.write_unraisable(py, Some(cb.bind(py)));
                }
            });
        }
    };
    let results = interrupt::run(py, || plan::run(&specs, &registry, &options, &emit))?;
    Ok(results.into_iter().map(results::ImageResult::from).collect())
}
