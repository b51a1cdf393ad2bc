//! Which images exist already: one batched registry check per set of check options (and one
//! local engine check for images without a registry), and what each answer means for the image.
//!
//! Fail closed: an image whose existence is unknown is failed with the check's reason unless the
//! caller opted in to assume it present.

use super::{Event, ImageResult, Node, Outcome, PlanOptions};
use crate::error::Result;
use crate::registry::{self, CheckResult, Status};
use crate::spec::Spec;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// (platforms, registry_config, insecure registries): what a registry check depends on.
pub type CheckKey = (Vec<String>, Option<PathBuf>, Vec<String>);

/// A spec's check options, read by one rule for the plan and for `imagespec.check` alike.
pub fn check_key(spec: &Spec) -> CheckKey {
    let platforms = spec
        .platform
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    (
        platforms,
        spec.registry_config.clone(),
        crate::spec::insecure_registries(spec),
    )
}

/// The existence of every node whose fate is not decided yet (not force-pushed, no builder's
/// own answer, not already failed); `None` for the others.
pub(super) fn existence(
    nodes: &[Node],
    own: &[Option<bool>],
    results: &[ImageResult],
    options: &PlanOptions,
    on_event: &(dyn Fn(Event) + Sync),
) -> Result<Vec<Option<CheckResult>>> {
    let skip: Vec<bool> = (0..nodes.len())
        .map(|i| nodes[i].spec.force_push || own[i].is_some() || results[i].reason.is_some())
        .collect();
    let to_check = skip.iter().filter(|s| !**s).count();
    if to_check > 0 {
        on_event(Event::Checking { images: to_check });
    }
    check_all(nodes, &skip, options.check_timeout)
}

/// Existence of every node not skipped, in one batch per set of check options.
fn check_all(nodes: &[Node], skip: &[bool], timeout: Duration) -> Result<Vec<Option<CheckResult>>> {
    let mut groups: BTreeMap<CheckKey, Vec<usize>> = BTreeMap::new();
    let mut local = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if skip[i] {
            continue;
        }
        if n.spec.registry.is_none() {
            local.push(i);
            continue;
        }
        groups.entry(check_key(&n.spec)).or_default().push(i);
    }
    let mut out: Vec<Option<CheckResult>> = vec![None; nodes.len()];
    let rt = crate::support::runtime::runtime()?;
    for ((platforms, registry_config, insecure), members) in groups {
        let refs: Vec<String> = members.iter().map(|&i| nodes[i].image.clone()).collect();
        let opts = registry::Options {
            platforms,
            registry_config,
            insecure,
            timeout,
            ..Default::default()
        };
        for (i, r) in members
            .into_iter()
            .zip(rt.block_on(registry::check(&refs, &opts))?)
        {
            out[i] = Some(r);
        }
    }
    if !local.is_empty() {
        let names: Vec<String> = local.iter().map(|&i| nodes[i].image.clone()).collect();
        for (i, r) in local
            .into_iter()
            .zip(rt.block_on(registry::check_local(&names, timeout))?)
        {
            out[i] = Some(r);
        }
    }
    Ok(out)
}

/// Records what the check's answer means for the node's result; true when it is to be built.
pub(super) fn apply(
    n: &Node,
    c: &CheckResult,
    options: &PlanOptions,
    r: &mut ImageResult,
    on_event: &(dyn Fn(Event) + Sync),
) -> bool {
    match c.status {
        Status::Exists => {
            r.outcome = Outcome::Exists;
            if let Some(d) = &c.digest {
                if n.spec.registry.is_some() {
                    r.name = format!("{}@{d}", n.image);
                }
            }
            on_event(Event::Exists {
                image: n.image.clone(),
            });
            false
        }
        Status::Missing => {
            on_event(Event::Missing {
                image: n.image.clone(),
                reason: c.reason.clone().unwrap_or_default(),
            });
            true
        }
        Status::Unknown => {
            let why = c.reason.clone().unwrap_or_else(|| "no answer".into());
            on_event(Event::Unknown {
                image: n.image.clone(),
                reason: why.clone(),
            });
            if options.assume_present {
                r.outcome = Outcome::Assumed;
                r.reason = Some(format!("existence unknown ({why}); assumed present as asked"));
                on_event(Event::Warning {
                    image: n.image.clone(),
                    message: format!("existence unknown ({why}); assuming it is present"),
                });
            } else {
                r.outcome = Outcome::Failed;
                r.reason = Some(format!(
                    "cannot tell whether it exists ({why}); not building blind. Fix the registry access, \
                     force a build with force_push(), or opt in to assume it present"
                ));
                on_event(Event::Failed {
                    image: n.image.clone(),
                    reason: r.reason.clone().unwrap_or_default(),
                });
            }
            false
        }
    }
}

/// Whether the image is present now (after another process held its lock).
pub(super) fn built_meanwhile(node: &Node, options: &PlanOptions) -> bool {
    let Ok(rt) = crate::support::runtime::runtime() else {
        return false;
    };
    let refs = [node.image.clone()];
    let answer = if node.spec.registry.is_some() {
        let (platforms, registry_config, insecure) = check_key(&node.spec);
        let opts = registry::Options {
            platforms,
            registry_config,
            insecure,
            use_cache: false,
            timeout: options.check_timeout,
            ..Default::default()
        };
        rt.block_on(registry::check(&refs, &opts))
    } else {
        rt.block_on(registry::check_local(&refs, options.check_timeout))
    };
    matches!(answer.as_deref(), Ok([r]) if r.status == Status::Exists)
}
