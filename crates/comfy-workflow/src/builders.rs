//! Graph builders for common tasks. Each builder turns a typed request into an API prompt with
//! titled nodes (titles name the running node in progress messages); the caller validates the
//! result against the backend's `/object_info` before sending it.

use serde::{Deserialize, Serialize};

use crate::graph::{ApiPrompt, Node};

/// One LoRA applied to the model and text encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraSpec {
    pub name: String,
    pub strength_model: f64,
    pub strength_clip: f64,
}

/// Text to image with a single-file checkpoint (SD1.x, SD2.x, SDXL and other families whose
/// checkpoints bundle model, text encoder and VAE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextToImage {
    pub checkpoint: String,
    pub prompt: String,
    pub negative_prompt: String,
    pub width: u32,
    pub height: u32,
    pub batch_size: u32,
    pub steps: u32,
    pub cfg: f64,
    pub sampler: String,
    pub scheduler: String,
    pub seed: u64,
    pub denoise: f64,
    pub loras: Vec<LoraSpec>,
    pub filename_prefix: String,
}

/// Node ids of the parts of a built graph that callers may want to address.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltGraph {
    pub prompt: ApiPrompt,
    pub sampler_node: String,
    pub output_node: String,
}

impl TextToImage {
    pub fn build(&self) -> BuiltGraph {
        let mut prompt = ApiPrompt::new();
        let loader = prompt.add(
            Node::new("CheckpointLoaderSimple")
                .with("ckpt_name", self.checkpoint.as_str())
                .with_title("Load checkpoint"),
        );
        let (mut model, mut clip) = ((loader.clone(), 0), (loader.clone(), 1));
        for (index, lora) in self.loras.iter().enumerate() {
            let node = prompt.add(
                Node::new("LoraLoader")
                    .with_link("model", &model.0, model.1)
                    .with_link("clip", &clip.0, clip.1)
                    .with("lora_name", lora.name.as_str())
                    .with("strength_model", lora.strength_model)
                    .with("strength_clip", lora.strength_clip)
                    .with_title(format!("LoRA {}: {}", index + 1, lora.name)),
            );
            model = (node.clone(), 0);
            clip = (node, 1);
        }
        let positive = prompt.add(
            Node::new("CLIPTextEncode")
                .with("text", self.prompt.as_str())
                .with_link("clip", &clip.0, clip.1)
                .with_title("Positive prompt"),
        );
        let negative = prompt.add(
            Node::new("CLIPTextEncode")
                .with("text", self.negative_prompt.as_str())
                .with_link("clip", &clip.0, clip.1)
                .with_title("Negative prompt"),
        );
        let latent = prompt.add(
            Node::new("EmptyLatentImage")
                .with("width", self.width)
                .with("height", self.height)
                .with("batch_size", self.batch_size)
                .with_title("Empty latent"),
        );
        let sampler = prompt.add(
            Node::new("KSampler")
                .with_link("model", &model.0, model.1)
                .with_link("positive", &positive, 0)
                .with_link("negative", &negative, 0)
                .with_link("latent_image", &latent, 0)
                .with("seed", self.seed)
                .with("steps", self.steps)
                .with("cfg", self.cfg)
                .with("sampler_name", self.sampler.as_str())
                .with("scheduler", self.scheduler.as_str())
                .with("denoise", self.denoise)
                .with_title("Sampler"),
        );
        let decode = prompt.add(
            Node::new("VAEDecode")
                .with_link("samples", &sampler, 0)
                .with_link("vae", &loader, 2)
                .with_title("VAE decode"),
        );
        let save = prompt.add(
            Node::new("SaveImage")
                .with_link("images", &decode, 0)
                .with("filename_prefix", self.filename_prefix.as_str())
                .with_title("Save image"),
        );
        BuiltGraph {
            prompt,
            sampler_node: sampler,
            output_node: save,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::InputValue;

    fn request() -> TextToImage {
        TextToImage {
            checkpoint: "tiny.ckpt".into(),
            prompt: "a cat".into(),
            negative_prompt: String::new(),
            width: 64,
            height: 64,
            batch_size: 1,
            steps: 4,
            cfg: 7.0,
            sampler: "euler".into(),
            scheduler: "normal".into(),
            seed: u64::MAX,
            denoise: 1.0,
            loras: vec![
                LoraSpec {
                    name: "a.safetensors".into(),
                    strength_model: 0.8,
                    strength_clip: 1.0,
                },
                LoraSpec {
                    name: "b.safetensors".into(),
                    strength_model: 0.5,
                    strength_clip: 0.5,
                },
            ],
            filename_prefix: "test".into(),
        }
    }

    #[test]
    fn chains_loras_between_loader_and_consumers() {
        let built = request().build();
        let prompt = &built.prompt;
        let sampler = prompt.get(&built.sampler_node).unwrap();
        let InputValue::Link(model) = InputValue::from_json(&sampler.inputs["model"]) else {
            panic!("model is a link")
        };
        let last_lora = prompt.get(&model.node_id).unwrap();
        assert_eq!(last_lora.class_type, "LoraLoader");
        assert_eq!(last_lora.inputs["lora_name"], "b.safetensors");
        let InputValue::Link(previous) = InputValue::from_json(&last_lora.inputs["model"]) else {
            panic!()
        };
        assert_eq!(
            prompt.get(&previous.node_id).unwrap().inputs["lora_name"],
            "a.safetensors"
        );
        assert_eq!(sampler.inputs["seed"], serde_json::json!(u64::MAX));
        assert_eq!(prompt.nodes.len(), 9);
    }
}
