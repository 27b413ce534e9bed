//! OpenAI's `POST /v1/moderations` over any served classifier: each label is a category, scored by the model's
//! own activation (sigmoid for multi-label models, softmax otherwise), flagged at or above its threshold unless
//! it is a label that never flags. The thresholds and never-flag labels of a model are its `moderation.json`.

use serde::Deserialize;

use crate::activation::Activation;
use crate::response::{ByLabel, ModerationResult};

/// A label flags from this score unless `moderation.json` says otherwise.
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// Labels that name the absence of harm never flag unless `moderation.json` lists its own: compared lowercase,
/// without spaces, `-` and `_` (`non-toxic`, `NOT_TOXIC`, `Safe`).
const BENIGN_LABELS: &[&str] = &[
    "safe",
    "neutral",
    "ok",
    "normal",
    "none",
    "benign",
    "clean",
    "nontoxic",
    "nottoxic",
    "harmless",
    "nothate",
    "nonhate",
    "acceptable",
];

/// How a model's scores become flags: one threshold per class and which classes never flag.
#[derive(Debug, Clone, PartialEq)]
pub struct ModerationPolicy {
    thresholds: Vec<f32>,
    never_flag: Vec<bool>,
}

/// `moderation.json` beside a model.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    /// Per label; labels not named get `default_threshold`.
    #[serde(default)]
    thresholds: std::collections::BTreeMap<String, f32>,
    default_threshold: Option<f32>,
    /// Replaces the built-in benign names; `[]`: every label may flag.
    never_flag: Option<Vec<String>>,
}

impl ModerationPolicy {
    /// The policy for `labels` from `moderation.json` (`None`: the defaults). Errors name the field; a label
    /// the model does not have is an error, so a typo cannot silently leave a category at the default.
    pub fn new(labels: &[String], file: Option<&[u8]>) -> Result<ModerationPolicy, String> {
        let file: PolicyFile = match file {
            None => PolicyFile::default(),
            Some(bytes) => serde_json::from_slice(bytes).map_err(|e| e.to_string())?,
        };
        let class = |label: &str, field: &str| {
            labels.iter().position(|l| l == label).ok_or_else(|| {
                format!("{field}: `{label}` is not a label of the model ({labels:?})")
            })
        };
        let checked = |value: f32, field: &str| {
            if (0.0..=1.0).contains(&value) {
                Ok(value)
            } else {
                Err(format!("{field}: {value} is not a score between 0 and 1"))
            }
        };
        let default = checked(
            file.default_threshold.unwrap_or(DEFAULT_THRESHOLD),
            "default_threshold",
        )?;
        let mut thresholds = vec![default; labels.len()];
        for (label, value) in &file.thresholds {
            thresholds[class(label, "thresholds")?] =
                checked(*value, &format!("thresholds.{label}"))?;
        }
        let never_flag = match &file.never_flag {
            Some(named) => {
                let mut never = vec![false; labels.len()];
                for label in named {
                    never[class(label, "never_flag")?] = true;
                }
                never
            }
            None => labels.iter().map(|label| is_benign(label)).collect(),
        };
        Ok(ModerationPolicy {
            thresholds,
            never_flag,
        })
    }

    /// One result per row of logits (one logit per label), in input order, each scored by `activation`.
    pub fn results(
        &self,
        labels: &[String],
        activation: Activation,
        logits: &[Vec<f32>],
    ) -> Vec<ModerationResult> {
        logits
            .iter()
            .map(|row| self.result(labels, &activation.apply(row)))
            .collect()
    }

    /// One input's result from its scores (one per label, after the model's activation).
    pub fn result(&self, labels: &[String], scores: &[f32]) -> ModerationResult {
        let categories: ByLabel<bool> = labels
            .iter()
            .enumerate()
            .map(|(i, label)| {
                let flags = !self.never_flag[i] && scores[i] >= self.thresholds[i];
                (label.clone(), flags)
            })
            .collect();
        ModerationResult {
            flagged: categories.0.iter().any(|(_, flags)| *flags),
            category_applied_input_types: labels.iter().map(|l| (l.clone(), ["text"])).collect(),
            category_scores: labels.iter().cloned().zip(scores.iter().copied()).collect(),
            categories,
        }
    }
}

fn is_benign(label: &str) -> bool {
    let folded: String = label
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_'))
        .flat_map(char::to_lowercase)
        .collect();
    BENIGN_LABELS.contains(&folded.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn benign_labels_never_flag_by_default() {
        let labels = labels(&["Non-Toxic", "toxic", "SAFE", "threat"]);
        let policy = ModerationPolicy::new(&labels, None).unwrap();
        let result = policy.result(&labels, &[0.9, 0.5, 0.9, 0.49]);
        assert_eq!(
            result.categories.0,
            [
                ("Non-Toxic".to_owned(), false),
                ("toxic".to_owned(), true),
                ("SAFE".to_owned(), false),
                ("threat".to_owned(), false)
            ]
        );
        assert!(result.flagged);
        let calm = policy.result(&labels, &[0.9, 0.1, 0.9, 0.1]);
        assert!(!calm.flagged);
    }

    #[test]
    fn the_file_sets_thresholds_and_replaces_the_never_flag_labels() {
        let labels = labels(&["neutral", "toxic", "threat"]);
        let file = br#"{"thresholds": {"threat": 0.2}, "default_threshold": 0.8, "never_flag": ["toxic"]}"#;
        let policy = ModerationPolicy::new(&labels, Some(file)).unwrap();
        let result = policy.result(&labels, &[0.85, 0.99, 0.2]);
        let flags: Vec<bool> = result.categories.0.iter().map(|(_, f)| *f).collect();
        assert_eq!(flags, [true, false, true]);
        let none = br#"{"never_flag": []}"#;
        let policy = ModerationPolicy::new(&labels, Some(none)).unwrap();
        assert!(policy.result(&labels, &[0.6, 0.0, 0.0]).flagged);
    }

    #[test]
    fn a_bad_file_names_what_is_wrong() {
        let labels = labels(&["neutral", "toxic"]);
        for (file, names) in [
            (&br#"{"thresholds": {"toxik": 0.5}}"#[..], "toxik"),
            (br#"{"never_flag": ["calm"]}"#, "calm"),
            (br#"{"thresholds": {"toxic": 1.5}}"#, "thresholds.toxic"),
            (br#"{"default_threshold": -1}"#, "default_threshold"),
            (br#"{"threshold": 0.5}"#, "threshold"),
        ] {
            let error = ModerationPolicy::new(&labels, Some(file)).unwrap_err();
            assert!(error.contains(names), "{error}");
        }
    }
}
