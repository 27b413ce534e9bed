//! With the `cuda` feature, compiles the server's own CUDA kernels (kernels/*.cu) with nvcc from CUDA_HOME or PATH:
//! one fatbin per file, SASS for CUDA_COMPUTE_CAP (nothing to JIT-compile on that GPU) plus PTX for newer ones.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=kernels");
    println!("cargo::rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let arch = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".to_owned());
    let nvcc = std::env::var("CUDA_HOME")
        .map(|home| PathBuf::from(home).join("bin/nvcc"))
        .unwrap_or_else(|_| PathBuf::from("nvcc"));
    for kernel in ["elementwise", "rows"] {
        let source = format!("kernels/{kernel}.cu");
        let status = Command::new(&nvcc)
            .args([
                "-fatbin",
                "-O3",
                "-gencode",
                &format!("arch=compute_{arch},code=[sm_{arch},compute_{arch}]"),
                &source,
                "-o",
            ])
            .arg(out_dir.join(format!("{kernel}.fatbin")))
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", nvcc.display()));
        assert!(status.success(), "nvcc failed on {source}");
    }
}
