//! Removing exports from a core Wasm module; every other section is copied
//! byte for byte.

use wasm_encoder::{ExportKind, ExportSection, Module, RawSection};
use wasmparser::{Encoding, ExternalKind, Parser, Payload};

/// The module without the exports named in `remove`, and the names it
/// actually removed (an export already absent is not an error: building
/// twice trims twice).
pub fn without_exports(wasm: &[u8], remove: &[&str]) -> Result<(Vec<u8>, Vec<String>), String> {
    let mut module = Module::new();
    let mut removed = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| e.to_string())?;
        match &payload {
            Payload::Version { encoding, .. } if *encoding != Encoding::Module => {
                return Err("not a core Wasm module".into());
            }
            Payload::ExportSection(reader) => {
                let mut kept = ExportSection::new();
                for export in reader.clone() {
                    let export = export.map_err(|e| e.to_string())?;
                    if remove.contains(&export.name) {
                        removed.push(export.name.to_string());
                    } else {
                        kept.export(export.name, export_kind(export.kind)?, export.index);
                    }
                }
                module.section(&kept);
            }
            _ => {
                if let Some((id, range)) = payload.as_section() {
                    let data = usize::try_from(range.start)
                        .ok()
                        .zip(usize::try_from(range.end).ok())
                        .and_then(|(start, end)| wasm.get(start..end))
                        .ok_or("section out of bounds")?;
                    module.section(&RawSection { id, data });
                }
            }
        }
    }
    Ok((module.finish(), removed))
}

fn export_kind(kind: ExternalKind) -> Result<ExportKind, String> {
    Ok(match kind {
        ExternalKind::Func => ExportKind::Func,
        ExternalKind::Table => ExportKind::Table,
        ExternalKind::Memory => ExportKind::Memory,
        ExternalKind::Global => ExportKind::Global,
        ExternalKind::Tag => ExportKind::Tag,
        other => return Err(format!("unsupported export kind {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{
        CodeSection, CustomSection, Function, FunctionSection, Instruction, TypeSection,
    };

    /// Two exported functions and a custom section.
    fn module() -> Vec<u8> {
        let mut types = TypeSection::new();
        types.ty().function([], []);
        let mut functions = FunctionSection::new();
        functions.function(0);
        functions.function(0);
        let mut exports = ExportSection::new();
        exports.export("proxy_on_log", ExportKind::Func, 0);
        exports.export("proxy_on_request_headers", ExportKind::Func, 1);
        let mut code = CodeSection::new();
        for _ in 0..2 {
            let mut body = Function::new([]);
            body.instruction(&Instruction::End);
            code.function(&body);
        }
        let mut module = Module::new();
        module
            .section(&types)
            .section(&functions)
            .section(&exports)
            .section(&code)
            .section(&CustomSection {
                name: "producers".into(),
                data: b"kept".into(),
            });
        module.finish()
    }

    /// The names a module exports.
    fn export_names(wasm: &[u8]) -> Result<Vec<String>, String> {
        let mut names = Vec::new();
        for payload in Parser::new(0).parse_all(wasm) {
            if let Payload::ExportSection(reader) = payload.map_err(|e| e.to_string())? {
                for export in reader {
                    names.push(export.map_err(|e| e.to_string())?.name.to_string());
                }
            }
        }
        Ok(names)
    }

    #[test]
    fn removes_only_the_named_exports_and_keeps_the_rest_valid() {
        let (trimmed, removed) = without_exports(&module(), &["proxy_on_log"]).unwrap();
        assert_eq!(removed, ["proxy_on_log"]);
        assert_eq!(
            export_names(&trimmed).unwrap(),
            ["proxy_on_request_headers"]
        );
        wasmparser::Validator::new().validate_all(&trimmed).unwrap();
        assert!(
            trimmed.windows(4).any(|w| w == b"kept"),
            "custom section lost"
        );
    }

    #[test]
    fn trimming_twice_changes_nothing_more() {
        let (once, _) = without_exports(&module(), &["proxy_on_log"]).unwrap();
        let (twice, removed) = without_exports(&once, &["proxy_on_log"]).unwrap();
        assert!(removed.is_empty());
        assert_eq!(once, twice);
    }

    #[test]
    fn refuses_what_is_not_a_module() {
        assert!(without_exports(b"not wasm", &[]).is_err());
    }
}
