//! Build script: generates the NRI API (prost messages + async ttrpc services) from proto/nri/.

use ttrpc_codegen_prost::{Codegen, Customize};

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=proto/nri");
    let out_dir = std::env::var("OUT_DIR").map_err(std::io::Error::other)?;
    Codegen::new()
        .out_dir(&out_dir)
        .input("proto/nri/api.proto")
        .include("proto/nri")
        .prost()
        .customize(Customize {
            gen_mod: true,
            async_all: true,
            ..Default::default()
        })
        .run()
}
