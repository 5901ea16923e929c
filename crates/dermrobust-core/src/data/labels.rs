//! Label schemes: how the diagnosis of each record becomes a class index.
//!
//! Records carry a canonical diagnosis code (HAM10000's `dx`: `mel`, `nv`, `bkl`, `bcc`, `akiec`,
//! `vasc`, `df`). A scheme chooses the classes and which records take part.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The seven HAM10000 diagnoses in the dataset paper's order.
pub const HAM7: [&str; 7] = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LabelScheme {
    /// The classes present in the data, sorted by name.
    #[default]
    Native,
    /// The seven HAM10000 diagnoses.
    Ham7,
    /// Melanoma (class 1) against melanocytic nevus (class 0); other diagnoses are left out
    /// (Maron et al., Du-Harpur et al.).
    MelVsNevus,
    /// Melanoma (class 1) against everything else (class 0) (Yan et al.).
    MelVsRest,
}

impl LabelScheme {
    pub const ALL: [LabelScheme; 4] =
        [LabelScheme::Native, LabelScheme::Ham7, LabelScheme::MelVsNevus, LabelScheme::MelVsRest];

    /// Class names of this scheme for data whose diagnoses are `present` (used by `Native`).
    pub fn classes(self, present: &[String]) -> Vec<String> {
        match self {
            LabelScheme::Native => {
                let mut v: Vec<String> = present.to_vec();
                v.sort();
                v.dedup();
                v
            }
            LabelScheme::Ham7 => HAM7.iter().map(|s| s.to_string()).collect(),
            LabelScheme::MelVsNevus => vec!["nv".into(), "mel".into()],
            LabelScheme::MelVsRest => vec!["other".into(), "mel".into()],
        }
    }

    /// Class index of a diagnosis, `Ok(None)` if the scheme leaves it out, `Err` if the scheme
    /// does not know it.
    pub fn class_of(self, dx: &str, classes: &[String]) -> Result<Option<usize>, String> {
        match self {
            LabelScheme::Native => Ok(classes.iter().position(|c| c == dx)),
            LabelScheme::Ham7 => match HAM7.iter().position(|c| *c == dx) {
                Some(i) => Ok(Some(i)),
                None => Err(format!("diagnosis '{dx}' is not one of the HAM10000 classes {}", HAM7.join(", "))),
            },
            LabelScheme::MelVsNevus => Ok(match dx {
                "mel" => Some(1),
                "nv" => Some(0),
                _ => None,
            }),
            LabelScheme::MelVsRest => Ok(Some(usize::from(dx == "mel"))),
        }
    }

    /// Index of the class treated as positive in binary metrics (melanoma where there is one).
    pub fn positive_class(classes: &[String]) -> usize {
        classes.iter().position(|c| c == "mel").unwrap_or(classes.len().saturating_sub(1))
    }
}

/// The form labels are compared in: trimmed, lower case, `_` and `-` read as spaces, runs of
/// spaces collapsed (so `Atypical Nevus`, `atypical_nevus` and `atypical-nevus` are one label).
pub fn normalise_label(label: &str) -> String {
    label
        .trim()
        .to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '_' || c == '-')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Map common spellings to the canonical diagnosis codes (HAM10000's `dx`), e.g. PH2's
/// `Common Nevus` and `Atypical Nevus` to `nv` and `Melanoma` to `mel`. A label with no known
/// spelling is returned trimmed and in lower case.
pub fn canonical_dx(label: &str) -> String {
    let known = match normalise_label(label).as_str() {
        "mel" | "melanoma" | "mm" | "malignant melanoma" => "mel",
        "nv" | "nevus" | "naevus" | "nevi" | "naevi" | "melanocytic nevus" | "melanocytic nevi" | "melanocytic naevus"
        | "common nevus" | "common naevus" | "atypical nevus" | "atypical naevus" | "dysplastic nevus" | "dysplastic naevus" => "nv",
        "bkl" | "seborrheic keratosis" | "seborrhoeic keratosis" | "sk" | "benign keratosis" | "benign keratosis like lesions"
        | "pigmented benign keratosis" => "bkl",
        "bcc" | "basal cell carcinoma" => "bcc",
        "akiec" | "actinic keratosis" | "actinic keratoses" | "ak" => "akiec",
        "df" | "dermatofibroma" => "df",
        "vasc" | "vascular" | "vascular lesion" | "vascular lesions" => "vasc",
        _ => return label.trim().to_ascii_lowercase(),
    };
    known.to_string()
}

/// A user's renaming of labels (`--label-map FILE`, or `label_map=FILE` in a dataset spec),
/// applied to the labels a dataset file holds before [`canonical_dx`]. Labels are matched in
/// their [`normalise_label`] form.
///
/// The file is CSV with two columns `from,to` (an optional header line `from,to`; blank lines and
/// lines starting with `#` are ignored), or, if its name ends in `.toml`, a TOML table of
/// `"from" = "to"` pairs (optionally under `[labels]`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelMap {
    /// Normalised `from` -> `to` as written.
    entries: BTreeMap<String, String>,
}

impl LabelMap {
    pub fn new<I: IntoIterator<Item = (S, S)>, S: AsRef<str>>(pairs: I) -> Self {
        LabelMap { entries: pairs.into_iter().map(|(a, b)| (normalise_label(a.as_ref()), b.as_ref().trim().to_string())).collect() }
    }

    /// Read a label map file. Errors name the file and, for CSV, the line.
    pub fn read(path: &Path) -> Result<LabelMap> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read label map {}", path.display()))?;
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
            Self::parse_toml(&text).with_context(|| format!("label map {}", path.display()))
        } else {
            Self::parse_csv(&text).map_err(|e| anyhow::anyhow!("label map {}, {e:#}", path.display()))
        }
    }

    fn parse_csv(text: &str) -> Result<LabelMap> {
        let mut map = LabelMap::default();
        let mut first_at: BTreeMap<String, String> = BTreeMap::new();
        let mut seen_content = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim().trim_start_matches('\u{feff}');
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let mut reader = csv::ReaderBuilder::new().has_headers(false).trim(csv::Trim::All).from_reader(l.as_bytes());
            let row = match reader.records().next() {
                Some(Ok(r)) => r,
                Some(Err(e)) => bail!("line {line}: malformed CSV ({e})"),
                None => continue,
            };
            if row.len() != 2 {
                bail!("line {line}: expected two columns from,to, found {} in '{l}'", row.len());
            }
            let (from, to) = (&row[0], &row[1]);
            if !seen_content && from.eq_ignore_ascii_case("from") && to.eq_ignore_ascii_case("to") {
                seen_content = true;
                continue;
            }
            seen_content = true;
            map.insert(from, to, &mut first_at, &format!("line {line}"))?;
        }
        Ok(map)
    }

    fn parse_toml(text: &str) -> Result<LabelMap> {
        let table: toml::Table = text.parse().context("not valid TOML")?;
        let table = match table.get("labels") {
            Some(toml::Value::Table(t)) if table.len() == 1 => t.clone(),
            _ => table,
        };
        let mut map = LabelMap::default();
        let mut first_at = BTreeMap::new();
        for (from, to) in &table {
            let to = to.as_str().with_context(|| format!("label '{from}' must map to a string, found {to}"))?;
            map.insert(from, to, &mut first_at, &format!("key '{from}'"))?;
        }
        Ok(map)
    }

    /// Add `from -> to`; `at` says where the entry is written ("line 3"), for errors.
    fn insert(&mut self, from: &str, to: &str, first_at: &mut BTreeMap<String, String>, at: &str) -> Result<()> {
        let key = normalise_label(from);
        if key.is_empty() {
            bail!("{at}: empty 'from' label");
        }
        if to.trim().is_empty() {
            bail!("{at}: empty 'to' label for '{from}'");
        }
        if let Some(prev) = self.entries.get(&key)
            && normalise_label(prev) != normalise_label(to)
        {
            bail!("{at}: '{from}' is mapped twice, to '{prev}' ({}) and to '{to}'", first_at[&key]);
        }
        first_at.entry(key.clone()).or_insert_with(|| at.to_string());
        self.entries.insert(key, to.trim().to_string());
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The renamed label, if the map has an entry for `label`.
    pub fn get(&self, label: &str) -> Option<&str> {
        self.entries.get(&normalise_label(label)).map(String::as_str)
    }

    /// `label` renamed by the map (unchanged without an entry), then made canonical.
    pub fn canonical(&self, label: &str) -> String {
        canonical_dx(self.get(label).unwrap_or(label))
    }
}

impl fmt::Display for LabelScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LabelScheme::Native => "native",
            LabelScheme::Ham7 => "ham7",
            LabelScheme::MelVsNevus => "mel-vs-nevus",
            LabelScheme::MelVsRest => "mel-vs-rest",
        })
    }
}

impl FromStr for LabelScheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LabelScheme::ALL
            .into_iter()
            .find(|x| x.to_string() == s)
            .ok_or_else(|| format!("unknown label scheme '{s}' (choose native, ham7, mel-vs-nevus or mel-vs-rest)"))
    }
}
