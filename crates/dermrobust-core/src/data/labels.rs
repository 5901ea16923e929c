//! Label schemes: how the diagnosis of each record becomes a class index.
//!
//! Records carry a canonical diagnosis code (HAM10000's `dx`: `mel`, `nv`, `bkl`, `bcc`, `akiec`,
//! `vasc`, `df`). A scheme chooses the classes and which records take part.

use std::fmt;
use std::str::FromStr;

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

/// Map common spellings to the canonical diagnosis codes.
pub fn canonical_dx(label: &str) -> String {
    let l = label.trim().to_ascii_lowercase();
    match l.as_str() {
        "melanoma" | "mm" => "mel".into(),
        "nevus" | "naevus" | "nevi" | "melanocytic nevus" | "melanocytic_nevi" => "nv".into(),
        "seborrheic_keratosis" | "seborrheic keratosis" | "sk" | "benign keratosis" => "bkl".into(),
        "basal cell carcinoma" | "basal_cell_carcinoma" => "bcc".into(),
        "actinic keratosis" | "actinic_keratosis" | "ak" => "akiec".into(),
        "dermatofibroma" => "df".into(),
        "vascular" | "vascular lesion" => "vasc".into(),
        _ => l,
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
