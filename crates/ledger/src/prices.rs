//! The model price table: the built-in Claude list prices, operator overrides and model-id
//! lookup.
//!
//! Rates are held as nano-USD per *million* tokens rather than per token: a price such as
//! $0.0000005 / MTok is below a nano-dollar per token, and keeping the per-MTok figure exact
//! means the only rounding happens once per cost component, in [`crate::cost`].

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::money::{Nanos, deserialize_opt_usd, deserialize_usd};

const BUILTIN_TOML: &str = include_str!("../data/prices.toml");

/// The five prices of one pricing tier, each in nano-USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    /// Uncached input tokens.
    pub input: Nanos,
    /// Output tokens, thinking included.
    pub output: Nanos,
    /// Cache writes with the 5-minute TTL.
    pub cache_write_5m: Nanos,
    /// Cache writes with the 1-hour TTL.
    pub cache_write_1h: Nanos,
    /// Cache reads (hits and refreshes).
    pub cache_read: Nanos,
}

impl Rates {
    /// Rates with the cache prices at Anthropic's standard multiples of `input`: 1.25x for a
    /// 5-minute write, 2x for a 1-hour write and 0.1x for a read, rounded half up to the nano.
    pub fn with_standard_cache(input: Nanos, output: Nanos) -> Rates {
        Rates {
            input,
            output,
            cache_write_5m: scale(input, 5, 4),
            cache_write_1h: scale(input, 2, 1),
            cache_read: scale(input, 1, 10),
        }
    }

    fn all(&self) -> [Nanos; 5] {
        [
            self.input,
            self.output,
            self.cache_write_5m,
            self.cache_write_1h,
            self.cache_read,
        ]
    }
}

fn scale(n: Nanos, num: i128, den: i128) -> Nanos {
    let scaled = (i128::from(n.0) * num * 2 + den).div_euclid(den * 2);
    Nanos(i64::try_from(scaled).unwrap_or(if scaled < 0 { i64::MIN } else { i64::MAX }))
}

/// What one model costs: its base rates and, for models priced by prompt length, a second tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPrice {
    /// Human-readable name for model listings, e.g. "Claude Sonnet 4.5".
    pub display_name: String,
    /// Rates for requests at or below the long-context threshold (or all requests if none).
    pub base: Rates,
    /// `(above_input_tokens, rates)`: when a request's input tokens, cache reads and writes
    /// included, exceed the threshold, every component of it is billed at these rates.
    pub long_context: Option<(u64, Rates)>,
}

impl ModelPrice {
    /// The tier that bills a request with `total_input_tokens` of input (uncached input plus
    /// cache writes and reads).
    pub fn rates_for(&self, total_input_tokens: u64) -> &Rates {
        match &self.long_context {
            Some((above, rates)) if total_input_tokens > *above => rates,
            _ => &self.base,
        }
    }

    fn validate(&self, model: &str) -> Result<(), PriceError> {
        let tiers = std::iter::once(&self.base).chain(self.long_context.as_ref().map(|(_, r)| r));
        if tiers.flat_map(Rates::all).any(|n| n.0 < 0) {
            return Err(invalid(model, "a price is negative"));
        }
        Ok(())
    }
}

/// Why a price table or an override could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// The text is not TOML, or does not follow the price-table schema.
    #[error("price table does not parse: {0}")]
    Toml(#[from] toml::de::Error),
    /// An entry parses but cannot be priced with, e.g. a negative rate or a duplicate id.
    #[error("price of model {model:?}: {reason}")]
    Invalid {
        /// The model id the problem was found at.
        model: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(model: &str, reason: impl Into<String>) -> PriceError {
    PriceError::Invalid {
        model: model.to_owned(),
        reason: reason.into(),
    }
}

/// All known model prices, keyed by canonical model id, with the aliases that resolve to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable {
    /// Where the figures came from (a URL), for display next to computed costs.
    pub source: String,
    /// The date the figures were checked, `YYYY-MM-DD`.
    pub as_of: String,
    models: BTreeMap<String, ModelPrice>,
    /// Alias → canonical id.
    aliases: HashMap<String, String>,
}

impl PriceTable {
    /// The table shipped with the gateway (`data/prices.toml`), Claude API list prices.
    pub fn builtin() -> PriceTable {
        // The embedded file is a build input, checked by this module's tests; failing here is
        // a broken build, not bad request data.
        PriceTable::from_toml_str(BUILTIN_TOML).expect("the embedded data/prices.toml is valid")
    }

    /// Parses a table in the `data/prices.toml` schema; every rate of every tier is required.
    pub fn from_toml_str(text: &str) -> Result<PriceTable, PriceError> {
        let file: FileTable = toml::from_str(text)?;
        let mut table = PriceTable {
            source: file.source,
            as_of: file.as_of,
            models: BTreeMap::new(),
            aliases: HashMap::new(),
        };
        for (id, entry) in file.models {
            let (aliases, price) = entry.into_price();
            price.validate(&id)?;
            for alias in aliases {
                if alias == id {
                    continue;
                }
                if let Some(other) = table.aliases.insert(alias.clone(), id.clone()) {
                    return Err(invalid(
                        &id,
                        format!("alias {alias:?} is also an alias of {other:?}"),
                    ));
                }
            }
            table.models.insert(id, price);
        }
        if let Some(alias) = table.aliases.keys().find(|a| table.models.contains_key(*a)) {
            return Err(invalid(alias, "is both a model id and an alias"));
        }
        Ok(table)
    }

    /// Applies operator overrides keyed by model id (config `[prices."model-id"]`).
    ///
    /// A key that resolves to a known model (by id, alias, dated id or `[1m]` suffix) replaces
    /// that model's price whole: cache prices the override leaves out take the standard
    /// multiples of its `input`, and a long-context tier it leaves out is dropped, so a
    /// negotiated price never mixes with list prices. The model keeps its aliases and, unless
    /// the override names one, its display name. Any other key adds a new model under that id.
    /// Either every override applies or, on error, none does.
    pub fn apply_overrides(
        &mut self,
        overrides: &BTreeMap<String, PriceOverride>,
    ) -> Result<(), PriceError> {
        let mut replacements = Vec::with_capacity(overrides.len());
        for (key, o) in overrides {
            let id = self.canonical_id(key).unwrap_or(key).to_owned();
            let display_name = o
                .display_name
                .clone()
                .or_else(|| self.models.get(&id).map(|p| p.display_name.clone()))
                .unwrap_or_else(|| id.clone());
            let price = o.to_model_price(display_name);
            price.validate(key)?;
            replacements.push((id, price));
        }
        self.models.extend(replacements);
        Ok(())
    }

    /// The canonical id `model` resolves to: itself, an alias's target, or either of those
    /// once a trailing `[1m]` and then a trailing `-YYYYMMDD` snapshot date are removed.
    pub fn canonical_id(&self, model: &str) -> Option<&str> {
        let model = model
            .strip_suffix("[1m]")
            .or_else(|| model.strip_suffix("[1M]"))
            .unwrap_or(model);
        self.resolve_exact(model)
            .or_else(|| strip_snapshot_date(model).and_then(|m| self.resolve_exact(m)))
    }

    /// The price of `model`, matched as described at [`PriceTable::canonical_id`].
    pub fn lookup(&self, model: &str) -> Option<&ModelPrice> {
        self.canonical_id(model).and_then(|id| self.models.get(id))
    }

    /// Canonical model ids in sorted order, for the `/v1/models` listing.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    fn resolve_exact(&self, id: &str) -> Option<&str> {
        match self.models.get_key_value(id) {
            Some((key, _)) => Some(key.as_str()),
            None => self.aliases.get(id).map(String::as_str),
        }
    }
}

/// `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`; `None` when there is no date suffix.
fn strip_snapshot_date(model: &str) -> Option<&str> {
    let (base, date) = model.rsplit_once('-')?;
    (!base.is_empty() && date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()))
        .then_some(base)
}

/// An operator's price for one model, as written in a config table `[prices."model-id"]`.
///
/// Prices are USD per million tokens, as numbers or decimal strings. `input` and `output` are
/// required; a missing cache price is the standard multiple of `input` (1.25x for
/// `cache_write_5m`, 2x for `cache_write_1h`, 0.1x for `cache_read`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceOverride {
    /// Name for model listings; defaults to the replaced model's name, or to the id.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Uncached input, per million tokens.
    #[serde(deserialize_with = "deserialize_usd")]
    pub input: Nanos,
    /// Output, per million tokens.
    #[serde(deserialize_with = "deserialize_usd")]
    pub output: Nanos,
    /// 5-minute cache writes, per million tokens; default 1.25x `input`.
    #[serde(default, deserialize_with = "deserialize_opt_usd")]
    pub cache_write_5m: Option<Nanos>,
    /// 1-hour cache writes, per million tokens; default 2x `input`.
    #[serde(default, deserialize_with = "deserialize_opt_usd")]
    pub cache_write_1h: Option<Nanos>,
    /// Cache reads, per million tokens; default 0.1x `input`.
    #[serde(default, deserialize_with = "deserialize_opt_usd")]
    pub cache_read: Option<Nanos>,
    /// A second tier for long prompts; none when absent.
    #[serde(default)]
    pub long_context: Option<LongContextOverride>,
}

/// The long-context tier of a [`PriceOverride`], with the same defaults for cache prices.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContextOverride {
    /// The tier applies when input plus cache tokens exceed this many tokens.
    pub above_input_tokens: u64,
    /// Uncached input, per million tokens.
    #[serde(deserialize_with = "deserialize_usd")]
    pub input: Nanos,
    /// Output, per million tokens.
    #[serde(deserialize_with = "deserialize_usd")]
    pub output: Nanos,
    /// 5-minute cache writes, per million tokens; default 1.25x `input`.
    #[serde(default, deserialize_with = "deserialize_opt_usd")]
    pub cache_write_5m: Option<Nanos>,
    /// 1-hour cache writes, per million tokens; default 2x `input`.
    #[serde(default, deserialize_with = "deserialize_opt_usd")]
    pub cache_write_1h: Option<Nanos>,
    /// Cache reads, per million tokens; default 0.1x `input`.
    #[serde(default, deserialize_with = "deserialize_opt_usd")]
    pub cache_read: Option<Nanos>,
}

impl PriceOverride {
    fn to_model_price(&self, display_name: String) -> ModelPrice {
        ModelPrice {
            display_name,
            base: rates_with_defaults(
                self.input,
                self.output,
                [self.cache_write_5m, self.cache_write_1h, self.cache_read],
            ),
            long_context: self.long_context.as_ref().map(|lc| {
                (
                    lc.above_input_tokens,
                    rates_with_defaults(
                        lc.input,
                        lc.output,
                        [lc.cache_write_5m, lc.cache_write_1h, lc.cache_read],
                    ),
                )
            }),
        }
    }
}

fn rates_with_defaults(input: Nanos, output: Nanos, cache: [Option<Nanos>; 3]) -> Rates {
    let standard = Rates::with_standard_cache(input, output);
    let [w5m, w1h, read] = cache;
    Rates {
        cache_write_5m: w5m.unwrap_or(standard.cache_write_5m),
        cache_write_1h: w1h.unwrap_or(standard.cache_write_1h),
        cache_read: read.unwrap_or(standard.cache_read),
        ..standard
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTable {
    source: String,
    as_of: String,
    #[serde(default)]
    models: BTreeMap<String, FileModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    display_name: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(deserialize_with = "deserialize_usd")]
    input: Nanos,
    #[serde(deserialize_with = "deserialize_usd")]
    output: Nanos,
    #[serde(deserialize_with = "deserialize_usd")]
    cache_write_5m: Nanos,
    #[serde(deserialize_with = "deserialize_usd")]
    cache_write_1h: Nanos,
    #[serde(deserialize_with = "deserialize_usd")]
    cache_read: Nanos,
    long_context: Option<FileLongContext>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLongContext {
    above_input_tokens: u64,
    #[serde(deserialize_with = "deserialize_usd")]
    input: Nanos,
    #[serde(deserialize_with = "deserialize_usd")]
    output: Nanos,
    #[serde(deserialize_with = "deserialize_usd")]
    cache_write_5m: Nanos,
    #[serde(deserialize_with = "deserialize_usd")]
    cache_write_1h: Nanos,
    #[serde(deserialize_with = "deserialize_usd")]
    cache_read: Nanos,
}

impl FileModel {
    fn into_price(self) -> (Vec<String>, ModelPrice) {
        let base = Rates {
            input: self.input,
            output: self.output,
            cache_write_5m: self.cache_write_5m,
            cache_write_1h: self.cache_write_1h,
            cache_read: self.cache_read,
        };
        let long_context = self.long_context.map(|lc| {
            let rates = Rates {
                input: lc.input,
                output: lc.output,
                cache_write_5m: lc.cache_write_5m,
                cache_write_1h: lc.cache_write_1h,
                cache_read: lc.cache_read,
            };
            (lc.above_input_tokens, rates)
        });
        let price = ModelPrice {
            display_name: self.display_name,
            base,
            long_context,
        };
        (self.aliases, price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Nanos {
        crate::money::parse_usd(s).expect("valid amount")
    }

    /// Every model the gateway must price, including the ids Claude Code sends by default.
    const REQUIRED: &[&str] = &[
        "claude-opus-5-5",
        "claude-sonnet-5-5",
        "claude-haiku-5-5",
        "claude-fable-5-2",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-opus-4-5",
        "claude-opus-4-1",
        "claude-opus-4",
        "claude-opus-5",
        "claude-fable-5-1",
        "claude-fable-5",
        "claude-mythos-5-1",
        "claude-mythos-5",
        "claude-sonnet-5",
        "claude-sonnet-4-6",
        "claude-sonnet-4-5",
        "claude-sonnet-4",
        "claude-haiku-4-5",
        "claude-3-5-haiku",
        // Dated and alias ids.
        "claude-sonnet-4-5-20250929",
        "claude-opus-4-5-20251101",
        "claude-opus-4-1-20250805",
        "claude-opus-4-20250514",
        "claude-opus-4-0",
        "claude-sonnet-4-20250514",
        "claude-sonnet-4-0",
        "claude-haiku-4-5-20251001",
        "claude-3-5-haiku-20241022",
        "claude-3-5-haiku-latest",
    ];

    #[test]
    fn builtin_parses_and_prices_every_required_model() {
        let table = PriceTable::builtin();
        assert_eq!(table.as_of, "2026-11-25");
        assert!(table.source.starts_with("https://"));
        for model in REQUIRED {
            let price = table.lookup(model);
            assert!(price.is_some(), "no price for {model}");
        }
    }

    #[test]
    fn builtin_cache_writes_follow_the_published_multipliers() {
        // The pricing page states write prices as 1.25x and 2x input for every model, and no
        // read above 0.1x; a mistyped figure shows up here.
        let table = PriceTable::builtin();
        for id in table.models() {
            let price = table.lookup(id).expect("listed ids resolve");
            assert!(!price.display_name.is_empty(), "{id}");
            let tiers =
                std::iter::once(&price.base).chain(price.long_context.as_ref().map(|t| &t.1));
            for r in tiers {
                assert!(r.input.0 > 0 && r.output.0 > r.input.0, "{id}");
                assert_eq!(r.cache_write_5m.0 * 4, r.input.0 * 5, "{id} 5m write");
                assert_eq!(r.cache_write_1h.0, r.input.0 * 2, "{id} 1h write");
                assert!(
                    r.cache_read.0 > 0 && r.cache_read.0 * 10 <= r.input.0,
                    "{id} read"
                );
            }
        }
    }

    #[test]
    fn builtin_figures_spot_checks() {
        let table = PriceTable::builtin();
        let sonnet45 = table.lookup("claude-sonnet-4-5").expect("listed");
        assert_eq!(sonnet45.display_name, "Claude Sonnet 4.5");
        assert_eq!(
            sonnet45.base,
            Rates {
                input: usd("3"),
                output: usd("15"),
                cache_write_5m: usd("3.75"),
                cache_write_1h: usd("6"),
                cache_read: usd("0.30"),
            }
        );
        let (above, lc) = sonnet45
            .long_context
            .expect("Sonnet 4.5 has a long-context tier");
        assert_eq!(above, 200_000);
        assert_eq!(
            (lc.input, lc.output, lc.cache_read),
            (usd("6"), usd("22.50"), usd("0.60"))
        );

        let haiku55 = table.lookup("claude-haiku-5-5").expect("listed");
        assert_eq!(haiku55.base.cache_write_5m, usd("0.125"));
        assert_eq!(haiku55.long_context.map(|(above, _)| above), Some(100_000));

        let opus55 = table.lookup("claude-opus-5-5").expect("listed");
        assert_eq!(
            (opus55.base.input, opus55.base.cache_read),
            (usd("4"), usd("0.20"))
        );
        assert!(opus55.long_context.is_none());

        let fable52 = table.lookup("claude-fable-5-2").expect("listed");
        assert_eq!(
            (fable52.base.input, fable52.base.output),
            (usd("8"), usd("40"))
        );
    }

    #[test]
    fn lookup_matches_aliases_dates_and_1m_suffix() {
        let table = PriceTable::builtin();
        let sonnet45 = table.lookup("claude-sonnet-4-5").expect("listed");
        assert_eq!(table.lookup("claude-sonnet-4-5-20250929"), Some(sonnet45));
        assert_eq!(table.lookup("claude-sonnet-4-5[1m]"), Some(sonnet45));
        assert_eq!(
            table.lookup("claude-sonnet-4-5-20250929[1m]"),
            Some(sonnet45)
        );
        // An unlisted snapshot date still resolves to its model.
        assert_eq!(table.lookup("claude-sonnet-4-5-20991231"), Some(sonnet45));

        assert_eq!(table.canonical_id("claude-opus-4-0"), Some("claude-opus-4"));
        assert_eq!(
            table.canonical_id("claude-opus-4-20250514"),
            Some("claude-opus-4")
        );
        assert_eq!(
            table.canonical_id("claude-opus-4-6[1m]"),
            Some("claude-opus-4-6")
        );
        assert_eq!(
            table.canonical_id("claude-3-5-haiku-latest"),
            Some("claude-3-5-haiku")
        );

        for unknown in [
            "",
            "gpt-6-sol",
            "claude-opus-9-9",
            "claude-sonnet-4-5-2025",
            "[1m]",
        ] {
            assert_eq!(table.lookup(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn models_lists_canonical_ids_sorted() {
        let table = PriceTable::builtin();
        let ids: Vec<&str> = table.models().collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted);
        assert!(ids.contains(&"claude-opus-5-5"));
        assert!(
            !ids.contains(&"claude-sonnet-4-5-20250929"),
            "aliases are not listed"
        );
    }

    #[test]
    fn override_replaces_a_price_and_defaults_cache_to_standard_multiples() {
        #[derive(Deserialize)]
        struct Config {
            prices: BTreeMap<String, PriceOverride>,
        }
        let config: Config = toml::from_str(
            r#"
            [prices."claude-sonnet-4-5-20250929"]
            input = 2.4
            output = 12
            cache_read = "0.2"

            [prices."acme-finetune"]
            display_name = "Acme fine-tune"
            input = 1
            output = 2
            long_context = { above_input_tokens = 1000, input = 2, output = 4 }
            "#,
        )
        .expect("valid config");
        let mut table = PriceTable::builtin();
        table
            .apply_overrides(&config.prices)
            .expect("valid overrides");

        let sonnet45 = table.lookup("claude-sonnet-4-5").expect("still listed");
        assert_eq!(sonnet45.display_name, "Claude Sonnet 4.5");
        assert_eq!(
            sonnet45.base,
            Rates {
                input: usd("2.4"),
                output: usd("12"),
                cache_write_5m: usd("3"),
                cache_write_1h: usd("4.8"),
                cache_read: usd("0.2"),
            }
        );
        assert_eq!(
            sonnet45.long_context, None,
            "an override replaces the whole price"
        );
        assert_eq!(table.lookup("claude-sonnet-4-5-20250929"), Some(sonnet45));
        assert!(!table.models().any(|m| m == "claude-sonnet-4-5-20250929"));

        let acme = table.lookup("acme-finetune").expect("added");
        assert_eq!(acme.display_name, "Acme fine-tune");
        assert_eq!(acme.base.cache_write_5m, usd("1.25"));
        let (above, lc) = acme.long_context.expect("tier given");
        assert_eq!(above, 1000);
        assert_eq!((lc.cache_write_1h, lc.cache_read), (usd("4"), usd("0.2")));
    }

    #[test]
    fn bad_overrides_are_rejected_whole() {
        #[derive(Debug, Deserialize)]
        struct Config {
            #[allow(dead_code)]
            prices: BTreeMap<String, PriceOverride>,
        }
        // Required field missing, and a misspelt field.
        assert!(toml::from_str::<Config>("[prices.x]\ninput = 1\n").is_err());
        assert!(
            toml::from_str::<Config>("[prices.x]\ninput = 1\noutput = 2\ncache_reed = 1\n")
                .is_err()
        );

        let mut overrides = BTreeMap::new();
        let ok = PriceOverride {
            display_name: None,
            input: usd("1"),
            output: usd("2"),
            cache_write_5m: None,
            cache_write_1h: None,
            cache_read: None,
            long_context: None,
        };
        overrides.insert("a-model".to_owned(), ok.clone());
        overrides.insert(
            "claude-opus-4-8".to_owned(),
            PriceOverride {
                cache_read: Some(Nanos(-1)),
                ..ok
            },
        );
        let mut table = PriceTable::builtin();
        let before = table.clone();
        assert!(matches!(
            table.apply_overrides(&overrides),
            Err(PriceError::Invalid { .. })
        ));
        assert_eq!(table, before);
    }

    #[test]
    fn malformed_tables_are_errors() {
        let head = "source = \"s\"\nas_of = \"2026-01-01\"\n";
        let model = |extra: &str| {
            format!(
                "{head}[models.m]\ndisplay_name = \"M\"\ninput = 1\noutput = 2\n\
                 cache_write_5m = 1.25\ncache_write_1h = 2\ncache_read = 0.1\n{extra}"
            )
        };
        assert!(PriceTable::from_toml_str(&model("")).is_ok());
        // Missing rate: the data file states every rate explicitly.
        assert!(
            PriceTable::from_toml_str(&format!(
                "{head}[models.m]\ndisplay_name = \"M\"\ninput = 1\noutput = 2\n"
            ))
            .is_err()
        );
        assert!(PriceTable::from_toml_str(&model("colour = 1\n")).is_err());
        assert!(PriceTable::from_toml_str(&model("aliases = [\"m\"]\n")).is_ok());
        let negative = model("").replace("cache_read = 0.1", "cache_read = -0.1");
        assert!(matches!(
            PriceTable::from_toml_str(&negative),
            Err(PriceError::Invalid { .. })
        ));
        let two = format!(
            "{}[models.n]\ndisplay_name = \"N\"\naliases = [\"m\"]\ninput = 1\noutput = 2\n\
             cache_write_5m = 1.25\ncache_write_1h = 2\ncache_read = 0.1\n",
            model("")
        );
        assert!(matches!(
            PriceTable::from_toml_str(&two),
            Err(PriceError::Invalid { .. })
        ));
    }

    #[test]
    fn standard_cache_multiples_are_exact() {
        let r = Rates::with_standard_cache(usd("0.08"), usd("0.4"));
        assert_eq!(r.cache_write_5m, usd("0.1"));
        assert_eq!(r.cache_write_1h, usd("0.16"));
        assert_eq!(r.cache_read, usd("0.008"));
        // Half a nano rounds up.
        assert_eq!(
            Rates::with_standard_cache(Nanos(5), Nanos(0)).cache_read,
            Nanos(1)
        );
        assert_eq!(
            Rates::with_standard_cache(Nanos(2), Nanos(0)).cache_write_5m,
            Nanos(3)
        );
    }
}
