//! The flags a worker evaluates now: compiled definitions with their header
//! names and stats, replaced whole when a new snapshot arrives.

use crate::config::FlagsConfig;
use crate::metrics::{Registry, Series};
use meshguard_api::flags::FlagDefinition;
use meshguard_plugin_kit::name_filter::{fingerprint, NameFilter};
use meshguard_policy::flags::{Flag, FlagSet, Rejected};

pub struct ActiveFlag {
    pub flag: Flag,
    pub header: String,
    variants: Vec<VariantOutput>,
}

/// What a request that gets a variant adds: its stats and its entry in the
/// summary header, written out once per snapshot.
pub struct VariantOutput {
    name: String,
    pub series: Series,
    /// `<flag key>=<variant>`.
    pub summary_entry: String,
}

impl ActiveFlag {
    pub fn output(&self, variant: &str) -> Option<&VariantOutput> {
        self.variants.iter().find(|v| v.name == variant)
    }
}

pub struct ActiveSet {
    pub flags: Vec<ActiveFlag>,
    /// Request headers any rule reads.
    pub headers_read: Vec<String>,
    /// The header names a flag of this set is sent in that no strip prefix
    /// covers (client-sent copies of the others go with their prefix).
    pub unprefixed_headers: Vec<String>,
    /// Every name the request pass compares a header's name with, other
    /// than the strip prefixes: most headers are none of them.
    pub names_of_interest: NameFilter,
}

impl ActiveSet {
    /// Compiles `definitions`; the ones left out are returned for reporting.
    pub fn build(
        definitions: &[FlagDefinition],
        config: &FlagsConfig,
        registry: &mut Registry,
    ) -> (ActiveSet, Vec<Rejected>) {
        let (set, rejected) = FlagSet::compile(definitions);
        let mut headers_read: Vec<String> = Vec::new();
        let flags: Vec<ActiveFlag> = set
            .flags()
            .iter()
            .map(|flag| {
                for name in flag.headers_read() {
                    if !headers_read.iter().any(|n| n == name) {
                        headers_read.push(name.to_string());
                    }
                }
                let variants = definitions
                    .iter()
                    .find(|d| d.key == flag.key())
                    .map(|d| d.variants.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default();
                ActiveFlag {
                    header: config.header_for(flag.key()),
                    variants: variants
                        .into_iter()
                        .map(|name| VariantOutput {
                            series: registry.series(flag.key(), &name),
                            summary_entry: format!("{}={name}", flag.key()),
                            name,
                        })
                        .collect(),
                    flag: flag.clone(),
                }
            })
            .collect();
        let prefixes = config.strip_prefixes();
        let unprefixed_headers = flags
            .iter()
            .map(|f| f.header.clone())
            .filter(|h| !prefixes.iter().any(|p| h.starts_with(p.as_str())))
            .collect::<Vec<String>>();
        let mut names_of_interest = NameFilter::default();
        let config_names = [
            Some(config.targeting_key_header.as_str()),
            Some(config.tier_header.as_str()),
            config.groups_header.as_deref(),
            config.consents_header.as_deref(),
            config.summary_header.as_deref(),
            Some(":path"),
        ];
        let set_names = headers_read.iter().chain(&unprefixed_headers);
        for name in config_names
            .into_iter()
            .flatten()
            .chain(set_names.map(String::as_str))
        {
            names_of_interest.insert(fingerprint(name.as_bytes()));
        }
        (
            ActiveSet {
                flags,
                headers_read,
                unprefixed_headers,
                names_of_interest,
            },
            rejected,
        )
    }
}
