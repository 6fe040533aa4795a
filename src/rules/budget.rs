//! What one spec may cost: expressions, values and regexes when it is compiled, steps when it is
//! evaluated. Specs come from registries anyone can push to; these bounds keep a hostile one
//! (up to `spec::MAX_BYTES`, of any shape) to milliseconds and megabytes. NFD bounds none of
//! this: a spec that exceeds them is refused here (a deliberate difference, far above any
//! realistic spec).

use std::cell::Cell;

/// The bounds; `Default` is what the plugin, the hook and the CLI use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Match expressions (each element of matchExpressions, each matchName).
    pub max_expressions: usize,
    /// Values of all expressions together (`In` lists, bounds, patterns).
    pub max_values: usize,
    /// `InRegexp` patterns.
    pub max_regexes: usize,
    /// Heap of all compiled patterns together, in bytes.
    pub max_regex_bytes: usize,
    /// Compiled size of one pattern, in bytes (`(a{100}){100}` is refused, not built).
    pub max_regex_nfa_bytes: usize,
    /// Expression evaluations in one evaluation of the spec (each element, name or instance an
    /// expression is checked against is one step).
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_expressions: 50_000,
            max_values: 200_000,
            max_regexes: 4_096,
            // As much as the largest single pattern: compiling is the costly part of reading a
            // spec of many patterns (2 MiB of them, ~15 ms in release), and a real spec has a few.
            max_regex_bytes: 2 << 20,
            max_regex_nfa_bytes: 2 << 20,
            max_steps: 1_000_000,
        }
    }
}

impl Limits {
    /// No bounds (tests, and checks of one expression).
    pub fn unlimited() -> Limits {
        Limits {
            max_expressions: usize::MAX,
            max_values: usize::MAX,
            max_regexes: usize::MAX,
            max_regex_bytes: usize::MAX,
            max_regex_nfa_bytes: 10 << 20,
            max_steps: u64::MAX,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("the spec has more than {0} expressions")]
    Expressions(usize),
    #[error("the spec's expressions have more than {0} values together")]
    Values(usize),
    #[error("the spec has more than {0} InRegexp patterns")]
    Regexes(usize),
    #[error("the spec's InRegexp patterns take more than {0} bytes compiled")]
    RegexBytes(usize),
    #[error("evaluating the spec takes more than {0} steps")]
    Steps(u64),
}

/// What compiling a spec has used so far.
#[derive(Debug)]
pub struct Budget {
    pub limits: Limits,
    expressions: usize,
    values: usize,
    regexes: usize,
    regex_bytes: usize,
    /// The first bound exceeded; compiling stops there.
    pub exceeded: Option<BudgetError>,
}

impl Budget {
    pub fn new(limits: Limits) -> Budget {
        Budget {
            limits,
            expressions: 0,
            values: 0,
            regexes: 0,
            regex_bytes: 0,
            exceeded: None,
        }
    }

    fn exceed(&mut self, e: BudgetError) -> bool {
        self.exceeded.get_or_insert(e);
        false
    }

    /// One expression with `values` values; false once a bound is exceeded.
    pub fn expression(&mut self, values: usize) -> bool {
        if self.exceeded.is_some() {
            return false;
        }
        self.expressions += 1;
        self.values = self.values.saturating_add(values);
        if self.expressions > self.limits.max_expressions {
            return self.exceed(BudgetError::Expressions(self.limits.max_expressions));
        }
        if self.values > self.limits.max_values {
            return self.exceed(BudgetError::Values(self.limits.max_values));
        }
        true
    }

    /// Room for one more pattern; false once a bound is exceeded.
    pub fn regex(&mut self) -> bool {
        if self.exceeded.is_some() {
            return false;
        }
        self.regexes += 1;
        if self.regexes > self.limits.max_regexes {
            return self.exceed(BudgetError::Regexes(self.limits.max_regexes));
        }
        true
    }

    /// A compiled pattern's heap; false once the total exceeds its bound.
    pub fn regex_bytes(&mut self, bytes: usize) -> bool {
        self.regex_bytes = self.regex_bytes.saturating_add(bytes);
        if self.regex_bytes > self.limits.max_regex_bytes {
            return self.exceed(BudgetError::RegexBytes(self.limits.max_regex_bytes));
        }
        true
    }
}

/// Steps of one evaluation.
#[derive(Debug)]
pub struct Steps {
    used: Cell<u64>,
    max: u64,
}

impl Steps {
    pub fn new(max: u64) -> Steps {
        Steps {
            used: Cell::new(0),
            max,
        }
    }

    /// One more step; an error once the bound is passed.
    pub fn take(&self) -> Result<(), BudgetError> {
        let used = self.used.get() + 1;
        self.used.set(used);
        if used > self.max {
            return Err(BudgetError::Steps(self.max));
        }
        Ok(())
    }

    pub fn used(&self) -> u64 {
        self.used.get()
    }
}
