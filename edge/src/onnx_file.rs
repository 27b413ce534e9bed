//! Reading an ONNX file the way exporters write it, before tract analyses it: weights in external data files
//! (`model.onnx.data`, torch's default) are read into the graph here, because tract's own reader maps files and
//! canonicalizes paths, neither of which WASI offers; and operators or element types tract cannot run are refused
//! with the file, the node and the operator named, instead of an analysis error.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use tract_onnx::pb::{GraphProto, ModelProto, TensorProto, tensor_proto, type_proto};
use tract_onnx::prelude::*;

/// ONNX's FLOAT16 and BFLOAT16 element types.
const HALF_TYPES: [(i32, &str); 2] = [(10, "float16"), (16, "bfloat16")];

/// An ONNX graph ready for tract.
pub struct OnnxGraph {
    pub model: InferenceModel,
    /// The graph quantizes activations at run time (`DynamicQuantizeLinear`, what `quantize_dynamic` writes):
    /// the scale is taken over the whole batch, so a sequence's logits depend on what it is batched with.
    pub quantizes_activations: bool,
}

/// The graph of `path` with its external data read in, checked for what tract cannot run.
pub fn read_model(path: &Path) -> Result<OnnxGraph, String> {
    let onnx = tract_onnx::onnx();
    let mut proto = onnx
        .proto_model_for_path(path)
        .map_err(|e| format!("not an ONNX model: {e:#}"))?;
    let graph = proto.graph.as_mut().ok_or("the file holds no graph")?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut external = ExternalData::new(dir);
    visit_tensors(graph, &mut |tensor| external.inline(tensor))?;
    refuse_unsupported(&proto, &onnx.op_register.0)?;
    let quantizes_activations = proto
        .graph
        .iter()
        .flat_map(|g| &g.node)
        .any(|node| node.op_type == "DynamicQuantizeLinear");
    let model = onnx
        .model_for_proto_model(&proto)
        .map_err(|e| format!("{e:#}"))?;
    Ok(OnnxGraph {
        model,
        quantizes_activations,
    })
}

/// External data files, opened once each, relative to the model file's directory.
struct ExternalData<'a> {
    dir: &'a Path,
    files: HashMap<String, File>,
}

impl<'a> ExternalData<'a> {
    fn new(dir: &'a Path) -> ExternalData<'a> {
        ExternalData {
            dir,
            files: HashMap::new(),
        }
    }

    /// Moves the bytes of an externally stored tensor into `raw_data`.
    fn inline(&mut self, tensor: &mut TensorProto) -> Result<(), String> {
        if tensor.data_location != Some(tensor_proto::DataLocation::External as i32) {
            return Ok(());
        }
        let field = |key: &str| {
            tensor
                .external_data
                .iter()
                .find(|entry| entry.key == key)
                .map(|entry| entry.value.as_str())
        };
        let number = |key: &str| -> Result<Option<u64>, String> {
            field(key)
                .map(|v| v.parse::<u64>())
                .transpose()
                .map_err(|e| format!("tensor `{}`: external data {key}: {e}", tensor.name))
        };
        let location = field("location")
            .ok_or_else(|| {
                format!(
                    "tensor `{}` has external data without a location",
                    tensor.name
                )
            })?
            .to_owned();
        let offset = number("offset")?.unwrap_or(0);
        let length = number("length")?;
        let file = self.open(&location)?;
        let read = |file: &mut File| -> std::io::Result<Vec<u8>> {
            let size = file.metadata()?.len();
            let end = length.map_or(Some(size), |length| offset.checked_add(length));
            let Some(end) = end.filter(|&end| offset <= end && end <= size) else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the range ends past the file's {size} bytes"),
                ));
            };
            file.seek(SeekFrom::Start(offset))?;
            let mut bytes = vec![0; usize::try_from(end - offset).map_err(std::io::Error::other)?];
            file.read_exact(&mut bytes)?;
            Ok(bytes)
        };
        let bytes = read(file).map_err(|e| {
            format!(
                "tensor `{}`: cannot read {location} at offset {offset}: {e}",
                tensor.name
            )
        })?;
        tensor.raw_data = bytes;
        tensor.external_data.clear();
        tensor.data_location = Some(tensor_proto::DataLocation::Default as i32);
        Ok(())
    }

    fn open(&mut self, location: &str) -> Result<&mut File, String> {
        if !self.files.contains_key(location) {
            let path = self.resolve(location)?;
            let file = File::open(&path)
                .map_err(|e| format!("external data file {}: {e}", path.display()))?;
            self.files.insert(location.to_owned(), file);
        }
        self.files
            .get_mut(location)
            .ok_or_else(|| format!("external data file {location} is not open"))
    }

    /// A location must name a file inside the model's directory.
    fn resolve(&self, location: &str) -> Result<PathBuf, String> {
        let relative = Path::new(location);
        if !stays_inside(relative) {
            return Err(format!(
                "external data location `{location}` is not a file inside the model's directory"
            ));
        }
        Ok(self.dir.join(relative))
    }
}

/// Whether `relative`, joined to a directory, names something inside it: not empty, not absolute, no `..`.
pub(crate) fn stays_inside(relative: &Path) -> bool {
    relative.components().next().is_some()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Calls `f` on every tensor stored in the graph: initializers and tensor attributes, in subgraphs too.
fn visit_tensors(
    graph: &mut GraphProto,
    f: &mut dyn FnMut(&mut TensorProto) -> Result<(), String>,
) -> Result<(), String> {
    for tensor in &mut graph.initializer {
        f(tensor)?;
    }
    for node in &mut graph.node {
        for attribute in &mut node.attribute {
            for tensor in attribute.t.iter_mut().chain(attribute.tensors.iter_mut()) {
                f(tensor)?;
            }
            for subgraph in attribute.g.iter_mut().chain(attribute.graphs.iter_mut()) {
                visit_tensors(subgraph, f)?;
            }
        }
    }
    Ok(())
}

/// Refuses operators tract has no implementation of (e.g. onnxruntime's `MatMulBnb4`) and half-precision graphs.
fn refuse_unsupported<V>(proto: &ModelProto, operators: &HashMap<String, V>) -> Result<(), String> {
    let Some(graph) = proto.graph.as_ref() else {
        return Ok(());
    };
    let mut unknown = Vec::new();
    unknown_operators(graph, operators, &mut unknown);
    if let Some((op, node)) = unknown.first() {
        let others = unknown.len() - 1;
        let more = if others > 0 {
            format!(" (and {others} more nodes with operators tract lacks)")
        } else {
            String::new()
        };
        return Err(format!(
            "operator `{op}` (node `{node}`) is not supported by the edge's ONNX runtime (tract){more}; \
             export the model without it (fp32 or int8 `quantize_dynamic`)"
        ));
    }
    let io = graph.input.iter().chain(&graph.output).filter_map(|value| {
        match value.r#type.as_ref()?.value.as_ref()? {
            type_proto::Value::TensorType(t) => Some((value.name.as_str(), t.elem_type)),
        }
    });
    let weights = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t.data_type));
    for (name, elem_type) in io.chain(weights) {
        if let Some((_, half)) = HALF_TYPES.iter().find(|(code, _)| *code == elem_type) {
            return Err(format!(
                "`{name}` is {half}: half-precision graphs are not supported on the edge; \
                 use the fp32 or int8 export"
            ));
        }
    }
    Ok(())
}

fn unknown_operators<V>(
    graph: &GraphProto,
    operators: &HashMap<String, V>,
    found: &mut Vec<(String, String)>,
) {
    for node in &graph.node {
        if !operators.contains_key(&node.op_type) {
            let op = if node.domain.is_empty() {
                node.op_type.clone()
            } else {
                format!("{}.{}", node.domain, node.op_type)
            };
            found.push((op, node.name.clone()));
        }
        for attribute in &node.attribute {
            for subgraph in attribute.g.iter().chain(&attribute.graphs) {
                unknown_operators(subgraph, operators, found);
            }
        }
    }
}
