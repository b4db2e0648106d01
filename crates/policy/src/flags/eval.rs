//! Flag evaluation for one request: rules, then rollout, then the split.
//!
//! A [`Flag`] is a [`FlagDefinition`] checked and prepared once (when a
//! snapshot or configuration arrives), so a request only walks vectors.

use super::bucket;
use meshguard_api::flags::{FlagDefinition, FlagError, RuleOp, TargetingRule, WeightedVariant};

/// What a rule compares. The names are those of `TargetingRule::attribute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// `sub`: the targeting key (the authenticated user id).
    Sub,
    /// `tier`: the caller's tier.
    Tier,
    /// `group`: any of the caller's groups.
    Group,
    /// `consent`: any purpose the user currently consents to (the auth
    /// plugin's `x-auth-consents`).
    Consent,
    /// `path`: the request path without its query.
    Path,
    /// `header:<name>`: a request header (lowercase name).
    Header(String),
}

impl Attribute {
    pub fn parse(name: &str) -> Option<Attribute> {
        match name {
            "sub" => Some(Attribute::Sub),
            "tier" => Some(Attribute::Tier),
            "group" => Some(Attribute::Group),
            "consent" => Some(Attribute::Consent),
            "path" => Some(Attribute::Path),
            _ => {
                let header = name.strip_prefix("header:")?;
                let valid = !header.is_empty()
                    && header.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                    });
                valid.then(|| Attribute::Header(header.to_string()))
            }
        }
    }
}

/// The request as flags see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    /// The targeting key; `None` for anonymous requests.
    pub key: Option<&'a str>,
    pub tier: Option<&'a str>,
    pub groups: &'a [&'a str],
    /// The purposes the user consents to.
    pub consents: &'a [&'a str],
    pub path: &'a str,
    /// The request headers rules may read (lowercase names).
    pub headers: &'a [(&'a str, &'a str)],
}

impl Subject<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// Why a flag gave its variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Disabled,
    /// The rule at this index matched.
    Rule(usize),
    /// Inside the rollout, placed by the weights.
    Split,
    /// Inside the rollout of a flag without weights: its default variant.
    Rollout,
    /// Outside the rollout: the default variant.
    OutOfRollout,
    /// No targeting key to bucket on: the default variant.
    Anonymous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation<'a> {
    pub variant: &'a str,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Split(Vec<(String, u32)>);

impl Split {
    fn new(weights: &[WeightedVariant]) -> Option<Split> {
        (!weights.is_empty()).then(|| {
            Split(
                weights
                    .iter()
                    .map(|w| (w.variant.clone(), w.weight))
                    .collect(),
            )
        })
    }

    /// The variant every key gets, when only one variant has weight.
    fn sole_variant(&self) -> Option<&str> {
        let mut weighted = self.0.iter().filter(|(_, w)| *w > 0);
        match (weighted.next(), weighted.next()) {
            (Some((v, _)), None) => Some(v),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Variant(String),
    Split(Split),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    attribute: Attribute,
    op: RuleOp,
    values: Vec<String>,
    outcome: Outcome,
}

impl Rule {
    fn matches(&self, subject: &Subject) -> bool {
        let test = |value: &str| match self.op {
            RuleOp::In | RuleOp::NotIn => self.values.iter().any(|v| v == value),
            RuleOp::StartsWith => self.values.iter().any(|v| value.starts_with(v.as_str())),
        };
        let found = match &self.attribute {
            Attribute::Sub => subject.key.is_some_and(test),
            Attribute::Tier => subject.tier.is_some_and(test),
            Attribute::Group => subject.groups.iter().any(|g| test(g)),
            Attribute::Consent => subject.consents.iter().any(|c| test(c)),
            Attribute::Path => test(subject.path),
            Attribute::Header(name) => subject.header(name).is_some_and(test),
        };
        match self.op {
            RuleOp::NotIn => !found,
            RuleOp::In | RuleOp::StartsWith => found,
        }
    }
}

/// A validated flag, ready to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    key: String,
    enabled: bool,
    default_variant: String,
    salt: String,
    rollout_ppm: u32,
    split: Option<Split>,
    rules: Vec<Rule>,
}

impl Flag {
    /// Validates `definition` (as the state service does) and the rule
    /// attributes, which only evaluation gives a meaning to.
    pub fn compile(definition: &FlagDefinition) -> Result<Flag, FlagError> {
        definition.validate()?;
        let rules = definition
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| compile_rule(i, rule))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Flag {
            key: definition.key.clone(),
            enabled: definition.enabled,
            default_variant: definition.default_variant.clone(),
            salt: definition
                .salt
                .clone()
                .unwrap_or_else(|| definition.key.clone()),
            rollout_ppm: definition
                .percentage
                .map_or(bucket::ROLLOUT_SCALE, bucket::rollout_ppm),
            split: Split::new(&definition.weights),
            rules,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Header names the rules read.
    pub fn headers_read(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().filter_map(|r| match &r.attribute {
            Attribute::Header(name) => Some(name.as_str()),
            _ => None,
        })
    }

    pub fn evaluate(&self, subject: &Subject) -> Evaluation<'_> {
        let default = |reason| Evaluation {
            variant: &self.default_variant,
            reason,
        };
        if !self.enabled {
            return default(Reason::Disabled);
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.matches(subject) {
                return match &rule.outcome {
                    Outcome::Variant(v) => Evaluation {
                        variant: v,
                        reason: Reason::Rule(i),
                    },
                    Outcome::Split(split) => match self.place(split, subject.key) {
                        Some(variant) => Evaluation {
                            variant,
                            reason: Reason::Rule(i),
                        },
                        None => default(Reason::Anonymous),
                    },
                };
            }
        }
        let rolled_out = match (self.rollout_ppm, subject.key) {
            (0, _) => false,
            (bucket::ROLLOUT_SCALE, _) => true,
            (ppm, Some(key)) => bucket::in_rollout(self.input(key), ppm),
            (_, None) => return default(Reason::Anonymous),
        };
        if !rolled_out {
            return default(Reason::OutOfRollout);
        }
        let Some(split) = &self.split else {
            return default(Reason::Rollout);
        };
        match self.place(split, subject.key) {
            Some(variant) => Evaluation {
                variant,
                reason: Reason::Split,
            },
            None => default(Reason::Anonymous),
        }
    }

    fn input<'a>(&'a self, key: &'a str) -> bucket::Input<'a> {
        bucket::Input {
            salt: &self.salt,
            key,
        }
    }

    /// The variant of `split` for `key`; anonymous subjects only get one when
    /// every key would get the same.
    fn place<'a>(&'a self, split: &'a Split, key: Option<&str>) -> Option<&'a str> {
        // One weighted variant: every key lands on it, no hash needed.
        if let Some(variant) = split.sole_variant() {
            return Some(variant);
        }
        bucket::pick(self.input(key?), &split.0).map(String::as_str)
    }
}

fn compile_rule(i: usize, rule: &TargetingRule) -> Result<Rule, FlagError> {
    let attribute = Attribute::parse(&rule.attribute).ok_or_else(|| FlagError {
        field: format!("rules[{i}].attribute"),
        message: format!(
            "unknown attribute {:?} (sub, tier, group, consent, path or header:<lowercase name>)",
            rule.attribute
        ),
    })?;
    let outcome = match (&rule.variant, Split::new(&rule.weights)) {
        (Some(v), _) => Outcome::Variant(v.clone()),
        (None, Some(split)) => Outcome::Split(split),
        (None, None) => {
            return Err(FlagError {
                field: format!("rules[{i}]"),
                message: "exactly one of variant and weights is required".into(),
            })
        }
    };
    Ok(Rule {
        attribute,
        op: rule.op,
        values: rule.values.clone(),
        outcome,
    })
}

/// The flags a request is evaluated against, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagSet {
    flags: Vec<Flag>,
}

/// A definition [`FlagSet::compile`] left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub key: String,
    pub error: FlagError,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "flag {:?}: {}", self.key, self.error)
    }
}

impl FlagSet {
    /// Compiles every definition; bad ones (and repeated keys) are left out
    /// and returned so the caller can report them.
    pub fn compile(definitions: &[FlagDefinition]) -> (FlagSet, Vec<Rejected>) {
        let mut flags: Vec<Flag> = Vec::with_capacity(definitions.len());
        let mut rejected = Vec::new();
        for definition in definitions {
            let compiled = if flags.iter().any(|f| f.key == definition.key) {
                Err(FlagError {
                    field: "key".into(),
                    message: "defined twice".into(),
                })
            } else {
                Flag::compile(definition)
            };
            match compiled {
                Ok(flag) => flags.push(flag),
                Err(error) => rejected.push(Rejected {
                    key: definition.key.clone(),
                    error,
                }),
            }
        }
        (FlagSet { flags }, rejected)
    }

    pub fn flags(&self) -> &[Flag] {
        &self.flags
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    pub fn len(&self) -> usize {
        self.flags.len()
    }
}
