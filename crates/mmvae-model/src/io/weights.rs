//! Weights files (burnpack `*.bpk`): what a file holds, read from its
//! header alone, and checked against the model it is for before any of its
//! data is loaded. Model weights are matched by tensor name and shape;
//! optimizer state (`optim.bpk`, kept for resuming) by the parameter id and
//! shape of every state tensor.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::store::burn_pack::Reader;
use std::collections::HashMap;
use std::path::Path;

use crate::error::one_line;

/// The most bytes a weights file's tensor list (its header) may take:
/// 16 MiB (a model's is a few KB).
pub const MAX_TENSOR_LIST: u32 = 16 << 20;

struct Shapes(Vec<Vec<usize>>);
impl ModuleVisitor for Shapes {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        self.0.push(p.val().dims().to_vec());
    }
}

fn shapes<M: Module>(m: &M) -> Vec<Vec<usize>> {
    let mut s = Shapes(Vec::new());
    m.visit(&mut s);
    s.0
}

/// A tensor a weights file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTensor {
    pub name: String,
    pub dtype: burn::store::burn_pack::DType,
    pub shape: Vec<usize>,
}

/// Check the fixed header of a weights file (burnpack: magic, version,
/// tensor list size) against the file's length, before anything is
/// allocated for it: the tensor list may take at most
/// [`MAX_TENSOR_LIST`] bytes and must fit in the file.
fn check_pack_header(head: &[u8], file_len: u64) -> std::result::Result<(), String> {
    use burn::store::burn_pack::{FORMAT_VERSION, HEADER_SIZE, MAGIC_NUMBER};
    if head.len() < HEADER_SIZE {
        return Err(format!(
            "{file_len} bytes are too short for a weights file header"
        ));
    }
    let u32_at = |o: usize| u32::from_le_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]);
    if u32_at(0) != MAGIC_NUMBER {
        return Err("not a burnpack weights file (wrong magic number)".into());
    }
    let version = u16::from_le_bytes([head[4], head[5]]);
    if version > FORMAT_VERSION {
        return Err(format!(
            "burnpack version {version}; this build reads versions up to {FORMAT_VERSION}"
        ));
    }
    let list = u32_at(6);
    if list > MAX_TENSOR_LIST {
        return Err(format!(
            "its tensor list takes {list} bytes, more than the limit of {MAX_TENSOR_LIST}"
        ));
    }
    if HEADER_SIZE as u64 + list as u64 > file_len {
        return Err(format!(
            "its tensor list of {list} bytes runs past the end of the {file_len}-byte file"
        ));
    }
    Ok(())
}

fn describe(
    reader: std::result::Result<Reader, String>,
) -> std::result::Result<Vec<StoredTensor>, String> {
    // The reader checks each tensor's element count against its byte range
    // and every range against the file's length; for a file the tensors'
    // data is only read when loaded.
    Ok(reader?
        .into_tensors()
        .map_err(|e| one_line(e.to_string()))?
        .into_iter()
        .map(|t| StoredTensor {
            name: t.name,
            dtype: t.dtype,
            shape: t.shape.to_vec(),
        })
        .collect())
}

/// The tensors of a weights file's bytes (as [`stored_tensors`] reads a
/// file).
pub fn parse_weights(bytes: &[u8]) -> std::result::Result<Vec<StoredTensor>, String> {
    describe(pack_of(bytes))
}

/// The names, types and shapes of the tensors in the weights file `path`,
/// from its header alone.
pub fn stored_tensors(path: &Path) -> std::result::Result<Vec<StoredTensor>, String> {
    describe(open_pack(path))
}

/// A reader of the weights file `path`, once its fixed header has been
/// checked against the file's length.
fn open_pack(path: &Path) -> std::result::Result<Reader, String> {
    use burn::store::burn_pack::HEADER_SIZE;
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut head = Vec::new();
    (&mut f)
        .take(HEADER_SIZE as u64)
        .read_to_end(&mut head)
        .map_err(|e| e.to_string())?;
    check_pack_header(&head, len)?;
    Reader::from_file(path).map_err(|e| one_line(e.to_string()))
}

/// A reader of a weights file's bytes, once its fixed header has been
/// checked against their length.
fn pack_of(bytes: &[u8]) -> std::result::Result<Reader, String> {
    use burn::store::burn_pack::Bytes;
    check_pack_header(bytes, bytes.len() as u64)?;
    Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).map_err(|e| one_line(e.to_string()))
}

/// The tensors `model` saves: each parameter's path and shape.
pub fn expected_tensors<M: Module>(model: &M) -> Vec<(String, Vec<usize>)> {
    #[derive(Default)]
    struct Names {
        path: Vec<String>,
        out: Vec<(String, Vec<usize>)>,
    }
    impl ModuleVisitor for Names {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let shape = p.transform_for_save().val().dims().to_vec();
            self.out.push((self.path.join("."), shape));
        }
    }
    let mut v = Names::default();
    model.visit(&mut v);
    v.out
}

/// Refuse stored tensors that are not exactly the model's: one missing,
/// one the model does not have, a shape that differs or an element type
/// that is not floating point. The message names the first problem and
/// counts the rest.
pub fn match_tensors(
    stored: &[StoredTensor],
    expected: &[(String, Vec<usize>)],
) -> std::result::Result<(), String> {
    let by_name: std::collections::HashMap<&str, &StoredTensor> =
        stored.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut problems = Vec::new();
    for (name, shape) in expected {
        match by_name.get(name.as_str()) {
            None => problems.push(format!("tensor `{name}` {shape:?} is missing")),
            Some(t) if &t.shape != shape => problems.push(format!(
                "tensor `{name}` is {:?}, the model's is {shape:?}",
                t.shape
            )),
            Some(t) if !holds_floats(t.dtype) => {
                problems.push(format!("tensor `{name}` holds {:?}, not floats", t.dtype))
            }
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    for t in stored {
        if !known.contains(t.name.as_str()) {
            problems.push(format!("tensor `{}` is not one of the model's", t.name));
        }
    }
    verdict(problems)
}

/// A floating-point element type, as every parameter and state holds.
fn holds_floats(dtype: burn::store::burn_pack::DType) -> bool {
    use burn::store::burn_pack::DType;
    matches!(
        dtype,
        DType::F64 | DType::F32 | DType::Flex32 | DType::F16 | DType::BF16
    )
}

/// Ok without problems; else the first, on one line, and how many more.
fn verdict(mut problems: Vec<String>) -> std::result::Result<(), String> {
    match problems.len() {
        0 => Ok(()),
        1 => Err(one_line(problems.remove(0))),
        n => Err(one_line(format!(
            "{} (and {} more problems)",
            problems[0],
            n - 1
        ))),
    }
}

/// Load weights into `model`, refusing a file whose tensors are not
/// exactly the model's (names, shapes, floating point): checked from the
/// file's header before its data is read, and the loaded shapes again.
pub fn load_weights<M: Module>(model: M, path: &Path) -> std::result::Result<M, String> {
    match_tensors(&stored_tensors(path)?, &expected_tensors(&model))?;
    check_shapes(model, |m| m.try_load_file(path).map_err(|e| e.to_string()))
}

/// `load` applied to `model`, refused when a tensor's shape differs from
/// the model's.
pub(crate) fn check_shapes<M: Module>(
    model: M,
    load: impl FnOnce(M) -> std::result::Result<M, String>,
) -> std::result::Result<M, String> {
    let expected = shapes(&model);
    let loaded = load(model)?;
    let got = shapes(&loaded);
    if got != expected {
        let msg = match expected
            .iter()
            .zip(&got)
            .enumerate()
            .find(|(_, (e, g))| e != g)
        {
            Some((i, (e, g))) => format!(
                "tensor shape mismatch at parameter {i}: file has {g:?}, model expects {e:?}"
            ),
            None => format!(
                "tensor shape mismatch: file has {} tensors, model expects {}",
                got.len(),
                expected.len()
            ),
        };
        return Err(msg);
    }
    Ok(loaded)
}

/// One tensor of a saved optimizer state (`optim.bpk`): burn names it
/// `"{param_id}.{field}"` and tags it with the id of the parameter it
/// belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredState {
    pub name: String,
    pub param: Option<u64>,
    pub dtype: burn::store::burn_pack::DType,
    pub shape: Vec<usize>,
}

/// What an optimizer-state file holds, from its header alone: the state
/// tensors and the rank recorded for each parameter (`"{id}.__rank"`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredOptim {
    pub tensors: Vec<StoredState>,
    pub ranks: Vec<(u64, usize)>,
}

fn describe_optim(
    reader: std::result::Result<Reader, String>,
) -> std::result::Result<StoredOptim, String> {
    let reader = reader?;
    // Only the scalars burn's loader reads as ranks: an id, then a whole
    // number.
    let ranks = reader
        .scalars()
        .iter()
        .filter_map(|(key, value)| {
            let id = key.strip_suffix(".__rank")?.parse::<u64>().ok()?;
            Some((id, usize::try_from(*value).ok()?))
        })
        .collect();
    let tensors = reader
        .into_tensors()
        .map_err(|e| one_line(e.to_string()))?
        .into_iter()
        .map(|t| StoredState {
            name: t.name,
            param: t.param_id,
            dtype: t.dtype,
            shape: t.shape.to_vec(),
        })
        .collect();
    Ok(StoredOptim { tensors, ranks })
}

/// The optimizer state in an `optim.bpk` file's bytes (as
/// [`stored_optim`] reads a file).
pub fn parse_optim(bytes: &[u8]) -> std::result::Result<StoredOptim, String> {
    describe_optim(pack_of(bytes))
}

/// The optimizer state in the file `path`, from its header alone.
pub fn stored_optim(path: &Path) -> std::result::Result<StoredOptim, String> {
    describe_optim(open_pack(path))
}

/// Each parameter of `model`: its id and shape.
pub fn model_params<M: Module>(model: &M) -> Vec<(u64, Vec<usize>)> {
    struct Params(Vec<(u64, Vec<usize>)>);
    impl ModuleVisitor for Params {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push((p.id.val(), p.val().dims().to_vec()));
        }
    }
    let mut v = Params(Vec::new());
    model.visit(&mut v);
    v.0
}

/// Refuse optimizer state that is not for `params` (id and shape of each
/// of the model's parameters): a state tensor without a parameter id, for
/// a parameter the model does not have, named for another one, of another
/// shape or not floating point, or a recorded rank that is not the
/// parameter's. Parameters without state are allowed (burn starts theirs
/// afresh). The message names the first problem and counts the rest.
pub fn match_optim(
    stored: &StoredOptim,
    params: &[(u64, Vec<usize>)],
) -> std::result::Result<(), String> {
    let shape_of: HashMap<u64, &Vec<usize>> = params.iter().map(|(id, s)| (*id, s)).collect();
    let mut problems = Vec::new();
    for t in &stored.tensors {
        let name = &t.name;
        let Some(id) = t.param else {
            problems.push(format!("state tensor `{name}` names no parameter"));
            continue;
        };
        match shape_of.get(&id) {
            None => problems.push(format!(
                "state tensor `{name}` is for parameter {id}, which the model does not have"
            )),
            Some(_) if name.split('.').next() != Some(id.to_string().as_str()) => problems.push(
                format!("state tensor `{name}` is tagged as parameter {id}'s"),
            ),
            Some(shape) if &t.shape != *shape => problems.push(format!(
                "state tensor `{name}` is {:?}, its parameter's is {shape:?}",
                t.shape
            )),
            Some(_) if !holds_floats(t.dtype) => problems.push(format!(
                "state tensor `{name}` holds {:?}, not floats",
                t.dtype
            )),
            Some(_) => {}
        }
    }
    for (id, rank) in &stored.ranks {
        match shape_of.get(id) {
            None => problems.push(format!(
                "a rank is recorded for parameter {id}, which the model does not have"
            )),
            Some(shape) if shape.len() != *rank => problems.push(format!(
                "parameter {id} is recorded with rank {rank}, the model's has rank {}",
                shape.len()
            )),
            Some(_) => {}
        }
    }
    verdict(problems)
}

/// Load the optimizer state of `model` from `path` into `optim`, refusing
/// a file whose state does not fit the model ([`match_optim`]), checked
/// from the file's header before its data is read.
pub fn load_optim_state<M: Module>(
    optim: ModuleOptimizer,
    model: &M,
    path: &Path,
) -> std::result::Result<ModuleOptimizer, String> {
    match_optim(&stored_optim(path)?, &model_params(model))?;
    optim.load(path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::store::burn_pack::DType;

    /// A linear layer `i → o` and its Adam state after one step, saved.
    fn stepped(i: usize, o: usize, dev: &Device) -> (Linear, Vec<u8>) {
        let m = LinearConfig::new(i, o).init(dev);
        let mut optim: ModuleOptimizer = AdamConfig::new().init();
        let x = Tensor::<2>::ones([4, i], dev);
        let grads = GradientsParams::from_grads(m.forward(x).sum().backward(), &m);
        let m = optim.step(1e-3, m, grads);
        let bytes = optim.into_bytes().unwrap().to_vec();
        (m, bytes)
    }

    #[test]
    fn optimizer_state_is_matched_to_its_model_by_parameter_id_and_shape() {
        let dev = Device::flex().autodiff();
        let (m, bytes) = stepped(3, 2, &dev);
        let stored = parse_optim(&bytes).unwrap();
        // Adam keeps two moments per parameter, each the parameter's shape.
        assert_eq!(stored.tensors.len(), 4, "{stored:?}");
        assert_eq!(stored.ranks.len(), 2, "{stored:?}");
        assert_eq!(match_optim(&stored, &model_params(&m)), Ok(()));
        // The state of another model of the same layout (other parameter
        // ids), and of a layer of another shape, are refused.
        let other = LinearConfig::new(3, 2).init(&dev);
        let e = match_optim(&stored, &model_params(&other)).unwrap_err();
        assert!(e.contains("which the model does not have"), "{e}");
        assert!(e.contains("more problems"), "{e}");
        let (wide, wide_bytes) = stepped(3, 5, &dev);
        let mut renamed = parse_optim(&wide_bytes).unwrap();
        let ids: Vec<u64> = model_params(&m).iter().map(|p| p.0).collect();
        let wide_ids: Vec<u64> = model_params(&wide).iter().map(|p| p.0).collect();
        // The wide layer's state under this layer's ids: names and tags
        // agree, shapes do not.
        for t in &mut renamed.tensors {
            let k = wide_ids.iter().position(|&id| Some(id) == t.param).unwrap();
            t.param = Some(ids[k]);
            t.name = t
                .name
                .replacen(&wide_ids[k].to_string(), &ids[k].to_string(), 1);
        }
        renamed.ranks.clear();
        let e = match_optim(&renamed, &model_params(&m)).unwrap_err();
        assert!(e.contains("its parameter's is"), "{e}");
        // A state tensor tagged with another parameter's id, without an
        // id, of integers, or a rank that is not the parameter's.
        let (w, b) = (ids[0], ids[1]);
        let base = StoredOptim {
            tensors: vec![StoredState {
                name: format!("{w}.moment_1"),
                param: Some(w),
                dtype: DType::F32,
                shape: model_params(&m)[0].1.clone(),
            }],
            ranks: vec![],
        };
        assert_eq!(match_optim(&base, &model_params(&m)), Ok(()));
        let tagged = |f: &dyn Fn(&mut StoredOptim)| {
            let mut s = base.clone();
            f(&mut s);
            match_optim(&s, &model_params(&m)).unwrap_err()
        };
        let e = tagged(&|s| s.tensors[0].param = Some(b));
        assert!(e.contains(&format!("tagged as parameter {b}'s")), "{e}");
        let e = tagged(&|s| s.tensors[0].param = None);
        assert!(e.contains("names no parameter"), "{e}");
        let e = tagged(&|s| s.tensors[0].dtype = DType::I64);
        assert!(e.contains("not floats"), "{e}");
        let e = tagged(&|s| s.ranks.push((w, 7)));
        assert!(e.contains("recorded with rank 7"), "{e}");
        let e = tagged(&|s| s.ranks.push((w ^ 1, 2)));
        assert!(e.contains("a rank is recorded for parameter"), "{e}");
    }

    #[test]
    fn a_line_break_in_a_stored_tensor_name_stays_in_one_line() {
        // Found by the optim fuzz target: a tensor named "1.momedt\npemoment_2"
        // whose byte range is empty; burn-pack's message quotes the name.
        let bytes =
            include_bytes!("../../../../fuzz/corpus/optim/min-line-break-in-a-tensor-name.bpk");
        let e = parse_optim(bytes).unwrap_err();
        assert!(e.contains("declares 0 bytes"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        let e = parse_weights(bytes).unwrap_err();
        assert_eq!(e.lines().count(), 1, "{e}");
        // And a name the model lacks, quoted in a mismatch.
        let stored = StoredOptim {
            tensors: vec![StoredState {
                name: "7.a\nb".into(),
                param: Some(7),
                dtype: burn::store::burn_pack::DType::F32,
                shape: vec![2],
            }],
            ranks: vec![],
        };
        let e = match_optim(&stored, &[(1, vec![2])]).unwrap_err();
        assert_eq!(e.lines().count(), 1, "{e}");
        let e = match_tensors(
            &[StoredTensor {
                name: "a\nb".into(),
                dtype: burn::store::burn_pack::DType::F32,
                shape: vec![2],
            }],
            &[],
        )
        .unwrap_err();
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn a_checked_optimizer_state_loads_and_a_mismatched_one_is_refused_from_the_file() {
        let dev = Device::flex().autodiff();
        let (m, bytes) = stepped(3, 2, &dev);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("optim.bpk");
        std::fs::write(&p, &bytes).unwrap();
        let fresh = || -> ModuleOptimizer { AdamConfig::new().init() };
        let loaded = load_optim_state(fresh(), &m, &p).unwrap();
        let sorted = |b: &[u8]| {
            let mut s = parse_optim(b).unwrap();
            s.tensors.sort_by(|x, y| x.name.cmp(&y.name));
            s.ranks.sort();
            s
        };
        assert_eq!(sorted(&loaded.into_bytes().unwrap()), sorted(&bytes));
        let other = LinearConfig::new(3, 2).init(&dev);
        let e = load_optim_state(fresh(), &other, &p).err().unwrap();
        assert!(e.contains("does not have"), "{e}");
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        assert!(load_optim_state(fresh(), &m, &p).is_err());
    }
}
