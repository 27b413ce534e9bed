//! Logits → `probs`, chosen as vLLM and transformers choose: by config.json's `problem_type`, else the
//! activation a Sentence-Transformers cross-encoder saved, else by the number of classes.

use serde::Deserialize;

/// How logits become `probs`, as named by `problem_type` in config.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemType {
    Regression,
    SingleLabelClassification,
    MultiLabelClassification,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Softmax,
    Sigmoid,
    Identity,
}

impl Activation {
    /// regression → identity; multi-label → sigmoid per class; then the cross-encoder's saved `activation_fn`;
    /// one class (score heads) → sigmoid; else softmax.
    pub fn for_model(
        problem_type: Option<ProblemType>,
        saved: Option<Activation>,
        num_classes: usize,
    ) -> Activation {
        match (problem_type, saved) {
            (Some(ProblemType::Regression), _) => Activation::Identity,
            (Some(ProblemType::MultiLabelClassification), _) => Activation::Sigmoid,
            (None, Some(saved)) => saved,
            _ if num_classes == 1 => Activation::Sigmoid,
            _ => Activation::Softmax,
        }
    }

    /// The activation a Sentence-Transformers cross-encoder names by its torch class
    /// (`torch.nn.modules.activation.Sigmoid`, `torch.nn.modules.linear.Identity`, …).
    pub fn from_torch_name(name: &str) -> Result<Activation, String> {
        match name.rsplit('.').next() {
            Some("Sigmoid") => Ok(Activation::Sigmoid),
            Some("Identity") => Ok(Activation::Identity),
            Some("Softmax") => Ok(Activation::Softmax),
            _ => Err(format!(
                "the activation `{name}` is not one this server applies (Sigmoid, Identity, Softmax)"
            )),
        }
    }

    pub fn apply(self, logits: &[f32]) -> Vec<f32> {
        match self {
            Activation::Identity => logits.to_vec(),
            Activation::Sigmoid => logits.iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect(),
            Activation::Softmax => {
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
                let sum: f32 = exps.iter().sum();
                exps.into_iter().map(|e| e / sum).collect()
            }
        }
    }
}

/// Index of the largest value; the first one on ties.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_by_problem_type_and_classes() {
        assert_eq!(Activation::for_model(None, None, 2), Activation::Softmax);
        assert_eq!(
            Activation::for_model(Some(ProblemType::SingleLabelClassification), None, 3),
            Activation::Softmax
        );
        assert_eq!(Activation::for_model(None, None, 1), Activation::Sigmoid);
        assert_eq!(
            Activation::for_model(Some(ProblemType::MultiLabelClassification), None, 4),
            Activation::Sigmoid
        );
        assert_eq!(
            Activation::for_model(Some(ProblemType::Regression), Some(Activation::Sigmoid), 1),
            Activation::Identity
        );
        assert_eq!(
            Activation::for_model(Some(ProblemType::Regression), None, 3),
            Activation::Identity
        );
    }

    #[test]
    fn a_saved_cross_encoder_activation_comes_after_problem_type() {
        let identity = Activation::from_torch_name("torch.nn.modules.linear.Identity");
        assert_eq!(identity, Ok(Activation::Identity));
        assert_eq!(
            Activation::for_model(None, Some(Activation::Identity), 1),
            Activation::Identity
        );
        assert_eq!(
            Activation::for_model(
                Some(ProblemType::SingleLabelClassification),
                Some(Activation::Identity),
                1
            ),
            Activation::Sigmoid
        );
        let tanh = Activation::from_torch_name("torch.nn.modules.activation.Tanh");
        assert!(tanh.is_err_and(|e| e.contains("Tanh")));
    }

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let probs = Activation::Softmax.apply(&[1000.0, 1001.0, 999.0]);
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((probs[1] - 0.66524096).abs() < 1e-6, "{probs:?}");
    }

    #[test]
    fn sigmoid_and_identity() {
        let probs = Activation::Sigmoid.apply(&[0.0, 2.0, -100.0]);
        assert!(
            (probs[0] - 0.5).abs() < 1e-7 && (probs[1] - 0.880797).abs() < 1e-6 && probs[2] < 1e-40
        );
        assert_eq!(Activation::Identity.apply(&[-3.5, 2.0]), [-3.5, 2.0]);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7]), 1);
        assert_eq!(argmax(&[0.9]), 0);
    }
}
