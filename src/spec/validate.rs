//! Semantic checks of a spec: what NFD would reject at evaluation, and what silently never
//! matches, each with its location.

use super::diag::{Diagnostic, Diags, Severity};
use super::types::*;
use crate::rules::{CompiledSpec, Expr, Op, Term};

/// Feature names NFD's sources produce (FEATURES.md), with their types, to catch typos and
/// expressions that can never match.
const KNOWN_FEATURES: &[(&str, Kind)] = &[
    ("cpu.cpuid", Kind::FlagsAndAttributes),
    ("cpu.model", Kind::Attributes),
    ("cpu.cstate", Kind::Attributes),
    ("cpu.pstate", Kind::Attributes),
    ("cpu.rdt", Kind::Attributes),
    ("cpu.security", Kind::Attributes),
    ("cpu.sst", Kind::Attributes),
    ("cpu.topology", Kind::Attributes),
    ("cpu.coprocessor", Kind::Attributes),
    ("kernel.version", Kind::Attributes),
    ("kernel.config", Kind::Attributes),
    ("kernel.loadedmodule", Kind::Flags),
    ("kernel.enabledmodule", Kind::Flags),
    ("kernel.selinux", Kind::Attributes),
    ("kernel.kvm", Kind::Attributes),
    ("memory.numa", Kind::Attributes),
    ("memory.swap", Kind::Attributes),
    ("memory.hugepages", Kind::Attributes),
    ("memory.nv", Kind::Instances),
    ("network.device", Kind::Instances),
    ("network.virtual", Kind::Instances),
    ("pci.device", Kind::Instances),
    ("usb.device", Kind::Instances),
    ("storage.block", Kind::Instances),
    ("system.osrelease", Kind::Attributes),
    ("system.name", Kind::Attributes),
    ("system.dmiid", Kind::Attributes),
    ("local.feature", Kind::Attributes),
    ("local.label", Kind::Attributes),
    ("rule.matched", Kind::Attributes),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Flags,
    Attributes,
    FlagsAndAttributes,
    Instances,
}

struct Checker {
    out: Diags,
}

impl Checker {
    fn push(&mut self, severity: Severity, pos: Pos, path: &str, message: String) {
        // Everything checked here NFD refuses at most where its evaluation reaches it.
        self.out.push(Diagnostic {
            severity,
            pos,
            path: path.to_string(),
            message,
            lazy: severity == Severity::Error,
        });
    }
    fn error(&mut self, pos: Pos, path: &str, message: String) {
        self.push(Severity::Error, pos, path, message);
    }
    fn warn(&mut self, pos: Pos, path: &str, message: String) {
        self.push(Severity::Warning, pos, path, message);
    }
}

/// Every semantic problem of the spec. Errors are what NFD would refuse when it evaluates
/// the expression (so image-compat refuses the spec up front, whatever the node) and what
/// image-compat cannot evaluate faithfully; warnings are what is valid but likely a mistake.
pub fn validate(compiled: &CompiledSpec) -> Vec<Diagnostic> {
    let spec = compiled.spec();
    let mut c = Checker {
        out: Diags::default(),
    };
    match spec.version.as_str() {
        SPEC_VERSION => {}
        "" => c.error(
            Pos::default(),
            "version",
            format!("version is missing (expected \"{SPEC_VERSION}\")"),
        ),
        other => c.error(
            Pos::default(),
            "version",
            format!("unsupported version \"{other}\" (this tool reads \"{SPEC_VERSION}\")"),
        ),
    }
    if spec.compatibilities.is_empty() {
        c.error(
            Pos::default(),
            "compatibilities",
            "the spec has no compatibility sets, so it says nothing about any node".into(),
        );
    }
    for (si, set) in spec.compatibilities.iter().enumerate() {
        let path = format!("compatibilities[{si}]");
        if set.rules.is_empty() {
            c.warn(
                set.pos,
                &path,
                "the set has no rules: it matches every node".into(),
            );
        }
        for (ri, rule) in set.rules.iter().enumerate() {
            let terms = |any| compiled.terms(si, ri, any);
            let rule_path = format!("{path}.rules[{ri}](\"{}\")", rule.name);
            if let Some(e) = compiled.template_error(si, ri) {
                c.error(
                    rule.pos,
                    &format!("{rule_path}.varsTemplate"),
                    crate::rules::template::TemplateError::FailedParse(Box::new(e.clone()))
                        .to_string(),
                );
            }
            check_rule(&mut c, rule, &terms, &rule_path);
        }
    }
    c.out.finish()
}

fn check_rule<'a>(
    c: &mut Checker,
    rule: &GroupRule,
    compiled: &dyn Fn(Option<usize>) -> &'a [Term],
    path: &str,
) {
    if rule.name.is_empty() {
        c.warn(
            rule.pos,
            path,
            "the rule has no name; reports will show \"\"".into(),
        );
    }

    let no_features = rule.match_features.as_ref().is_none_or(|f| f.is_empty());
    if no_features && rule.match_any.is_empty() {
        c.warn(
            rule.pos,
            path,
            "the rule has no matchFeatures and no matchAny: it matches every node".into(),
        );
    }
    let features = compiled(None);
    for (ti, term) in rule.match_features.iter().flatten().enumerate() {
        check_term(
            c,
            term,
            &features[ti],
            &format!("{path}.matchFeatures[{ti}]({})", term.feature),
        );
    }
    for (ai, any) in rule.match_any.iter().enumerate() {
        let terms = compiled(Some(ai));
        if any.match_features.is_empty() {
            c.warn(
                any.pos,
                &format!("{path}.matchAny[{ai}]"),
                "this matchAny alternative has no terms: it always matches".into(),
            );
        }
        for (ti, term) in any.match_features.iter().enumerate() {
            let p = format!(
                "{path}.matchAny[{ai}].matchFeatures[{ti}]({})",
                term.feature
            );
            check_term(c, term, &terms[ti], &p);
        }
    }
}

fn check_term(c: &mut Checker, term: &FeatureMatcherTerm, compiled: &Term, path: &str) {
    if term.feature.is_empty() {
        c.error(term.pos, path, "the term has no feature".into());
        return;
    }
    let lower = term.feature.to_lowercase();
    if lower != term.feature {
        c.warn(
            term.pos,
            path,
            format!(
                "feature names are lower case; NFD matches \"{}\" as \"{lower}\" but reports \
                 its expressions as not matched",
                term.feature
            ),
        );
    }
    let kind = KNOWN_FEATURES
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|(_, k)| *k);
    if kind.is_none() {
        let domain = lower.split('.').next().unwrap_or_default();
        let same_domain: Vec<&str> = KNOWN_FEATURES
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| n.split('.').next() == Some(domain))
            .collect();
        let hint = if same_domain.is_empty() {
            "sources: cpu, kernel, memory, network, pci, usb, storage, system, local".to_string()
        } else {
            format!("known in {domain}: {}", same_domain.join(", "))
        };
        c.warn(
            term.pos,
            path,
            format!("\"{lower}\" is not a feature NFD discovers, so it never matches ({hint})"),
        );
    }
    if term.match_expressions.is_none() && term.match_name.is_none() {
        c.warn(
            term.pos,
            path,
            "the term has neither matchExpressions nor matchName: it only checks that the \
             feature exists"
                .into(),
        );
    }
    let exprs = compiled.exprs.as_deref().unwrap_or_default();
    for (i, (name, e)) in term.match_expressions.iter().flatten().enumerate() {
        // Written out only for a diagnostic: most expressions have none.
        let p = || format!("{path}.matchExpressions.{name}");
        check_expr(c, e, &exprs[i].1, &p);
        if let (Some(Kind::Flags), Some(op)) = (kind, Op::parse(&e.op)) {
            if !matches!(op, Op::Any | Op::Exists | Op::DoesNotExist) {
                c.warn(
                    e.pos,
                    &p(),
                    format!(
                        "{lower} is a flag feature (names only, no values): {} never matches a \
                         flag; use Exists or DoesNotExist",
                        op.as_str()
                    ),
                );
            }
        }
    }
    if let (Some(e), Some(compiled)) = (&term.match_name, &compiled.name) {
        let p = || format!("{path}.matchName");
        check_expr(c, e, compiled, &p);
        if e.op == Op::DoesNotExist.as_str() {
            c.warn(
                e.pos,
                &p(),
                "DoesNotExist in matchName never matches (every name exists)".into(),
            );
        }
    }
}

fn check_expr(c: &mut Checker, e: &MatchExpression, compiled: &Expr, path: &dyn Fn() -> String) {
    if let Some(err) = compiled.static_error() {
        c.error(e.pos, &path(), format!("{e}: {err}"));
        return;
    }
    if compiled.never_matches() {
        c.warn(
            e.pos,
            &path(),
            format!("{e}: the lower bound is not below the upper bound, so this never matches"),
        );
    }
    let comparison = matches!(
        Op::parse(&e.op),
        Some(Op::Gt | Op::Ge | Op::Lt | Op::Le | Op::GtLt | Op::GeLe)
    );
    if !e.value_type.is_empty() && !comparison {
        c.warn(
            e.pos,
            &path(),
            format!(
                "type \"{}\" is ignored for op {} (it applies to Gt, Ge, Lt, Le, GtLt, GeLe)",
                e.value_type,
                if e.op.is_empty() { "Any" } else { &e.op }
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::check;

    fn messages(doc: &str) -> Vec<String> {
        check(doc, "t.yaml")
            .unwrap()
            .diagnostics
            .iter()
            .map(|d| d.display_in("t.yaml"))
            .collect()
    }

    #[test]
    fn malformed_spec_gets_located_readable_errors() {
        let doc = r#"version: v1alpha2
compatibilities:
- description: broken
  rules:
  - name: gpu
    matchFeatures:
    - feature: pci.device
      matchExpressions:
        vendor: {op: Inn, value: ["10de"]}
        class: {op: Exists, value: ["0300"]}
    - feature: kernel.version
      matchExpressions:
        major: {op: Gt, value: ["five"]}
        minor: {op: GtLt, value: ["9", "2"]}
        full: {op: Ge, value: ["5.a"], type: version}
        revision: {op: Gt, value: ["1", "2"]}
    - feature: kernel.loadedmodule
      matchExpressions:
        nvidia: {op: In, value: [y]}
    - feature: cpu.cpuid
      matchName: {op: InRegexp, value: ["("]}
      extra: 1
"#;
        let all = messages(doc);
        let has = |needle: &str| all.iter().any(|m| m.contains(needle));
        assert!(has("unsupported version \"v1alpha2\""), "{all:#?}");
        assert!(
            has("t.yaml:9:17: error: compatibilities[0].rules[0](\"gpu\").matchFeatures[0](pci.device).matchExpressions.vendor: Inn [10de]: invalid Op \"Inn\""),
            "{all:#?}"
        );
        assert!(has("matchExpressions.class: Exists [0300]: invalid expression, 'value' field must be empty"), "{all:#?}");
        assert!(
            has("matchExpressions.major: Gt [five]: not a number \"five\""),
            "{all:#?}"
        );
        assert!(has("matchExpressions.minor: GtLt [9, 2]: invalid expression, value[0] must be less than Value[1]"), "{all:#?}");
        assert!(
            has("matchExpressions.full: Ge [5.a] (version): not a version \"5.a\""),
            "{all:#?}"
        );
        assert!(has("matchExpressions.revision: Gt [1, 2]: invalid expression, 'value' field must contain exactly one element"), "{all:#?}");
        assert!(has("matchName: InRegexp [(]: invalid expression, 'value' field must only contain valid regexps"), "{all:#?}");
        assert!(has("warning: compatibilities[0].rules[0](\"gpu\").matchFeatures[3](cpu.cpuid).extra: unknown field \"extra\""), "{all:#?}");
        assert!(has("unquoted `y` is a YAML 1.1 boolean: NFD (and image-compat) read it as the string \"true\""), "{all:#?}");
        assert!(has("kernel.loadedmodule is a flag feature"), "{all:#?}");
        // Errors come before warnings.
        let first_warning = all.iter().position(|m| m.contains(": warning: ")).unwrap();
        assert!(all[..first_warning].iter().all(|m| m.contains(": error: ")));
        assert!(all[first_warning..]
            .iter()
            .all(|m| m.contains(": warning: ")));
    }

    #[test]
    fn structure_errors() {
        let all = messages("version: v1alpha1\ncompatibilities: {a: 1}\n");
        assert!(
            all.iter()
                .any(|m| m.contains("compatibilities: expected a list, found a map")),
            "{all:#?}"
        );
        assert!(
            all.iter().any(|m| m.contains("no compatibility sets")),
            "{all:#?}"
        );
        let all = messages("version: v1alpha1\ncompatibilities:\n- rules:\n  - name: r\n    matchFeatures:\n    - feature: pci.device\n      matchExpressions:\n        vendor:\n");
        assert!(
            all.iter()
                .any(|m| m.contains("the expression is empty (null)")),
            "{all:#?}"
        );
        let all = messages("version: v1alpha1\ncompatibilities:\n- weight: heavy\n  rules: []\n");
        assert!(all.iter().any(|m| m.contains("t.yaml:3:11: error: compatibilities[0].weight: expected an integer, found a string")), "{all:#?}");
        assert!(all.iter().any(|m| m.contains("has no rules")), "{all:#?}");
    }

    #[test]
    fn valid_spec_has_no_errors() {
        let doc = "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: k\n    matchFeatures:\n    - feature: kernel.loadedmodule\n      matchExpressions:\n        vfio-pci: {op: Exists}\n";
        let checked = check(doc, "t").unwrap();
        assert!(checked.is_valid(), "{:#?}", checked.diagnostics);
        assert_eq!(checked.diagnostics, vec![]);
    }

    #[test]
    fn the_registry_fetches_no_more_than_the_reader_takes() {
        assert_eq!(
            crate::registry::DEFAULT_MAX_SPEC_BYTES,
            crate::spec::MAX_BYTES as u64
        );
    }
}
