//! The CUDA kernels (native/kernels/) checked on the host: kernels/emulation/kernel_tests.cpp runs them under a
//! warp emulation with AddressSanitizer against double-precision references. Needs a C++20 compiler (`CXX`, else
//! `c++`), not CUDA, so it runs on every build; the GPU parity runs (tests/bench/gpu) check the real thing.

use std::path::Path;
use std::process::Command;

#[test]
fn cuda_kernels_match_their_references_under_emulation() {
    let kernels = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let emulation = kernels.join("emulation");
    let binary = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernel_tests");
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".to_owned());
    let compiled = Command::new(&compiler)
        .args([
            "-std=c++20",
            "-O1",
            "-g",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-Wall",
            "-Werror",
            "-Wno-unknown-pragmas",
            "-rdynamic",
        ])
        .arg("-I")
        .arg(emulation.join("shim"))
        .arg("-include")
        .arg(emulation.join("cuda_emulation.h"))
        .arg(emulation.join("kernel_tests.cpp"))
        .arg("-o")
        .arg(&binary)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C++ compiler `{compiler}`: {e}"));
    assert!(
        compiled.status.success(),
        "compiling the kernel emulation failed:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let run = Command::new(&binary)
        .output()
        .expect("the compiled kernel tests run");
    assert!(
        run.status.success(),
        "kernel checks failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}
