//! The package in JSON, CSV or XML, and the readers that parse each back.

use crate::error::{Error, Result};
use crate::metadata::CategoryInfo;
use crate::package::{Format, Package, Record};
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};

pub fn write(p: &Package, format: Format) -> Result<Vec<u8>> {
    match format {
        Format::Json => serde_json::to_vec_pretty(p).map_err(|e| Error::Internal(e.to_string())),
        Format::Csv => write_csv(p).map_err(|e| Error::Internal(format!("csv: {e}"))),
        Format::Xml => write_xml(p).map_err(|e| Error::Internal(format!("xml: {e}"))),
    }
}

pub fn read(bytes: &[u8], format: Format) -> Result<Package> {
    let bad = |e: String| Error::Invalid(format!("package: {e}"));
    match format {
        Format::Json => serde_json::from_slice(bytes).map_err(|e| bad(e.to_string())),
        Format::Csv => read_csv(bytes).map_err(bad),
        Format::Xml => read_xml(bytes).map_err(bad),
    }
}

// CSV: one table `section,source,category,location,field,value`; sections
// `package` (header fields), `category` (Art. 15 metadata, one row per
// item), `right`, `record`.

const CSV_HEADER: [&str; 6] = [
    "section", "source", "category", "location", "field", "value",
];

/// A cell a spreadsheet would not run as a formula: a value starting with
/// `=`, `+`, `-`, `@`, tab or CR (or the quote itself, to stay reversible)
/// gets a leading `'`, which `uncell` takes off again.
fn cell(value: &str) -> std::borrow::Cow<'_, str> {
    match value.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r' | b'\'') => format!("'{value}").into(),
        _ => value.into(),
    }
}

fn uncell(value: &str) -> String {
    value.strip_prefix('\'').unwrap_or(value).to_string()
}

fn row<W: std::io::Write, const N: usize>(
    w: &mut csv::Writer<W>,
    fields: [&str; N],
) -> std::result::Result<(), csv::Error> {
    w.write_record(fields.map(cell).iter().map(|c| c.as_ref()))
}

fn write_csv(p: &Package) -> std::result::Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    for (field, value) in [
        ("format", &p.format),
        ("request_id", &p.request_id),
        ("request_kind", &p.request_kind),
        ("subject", &p.subject),
        ("generated_at", &p.generated_at),
        ("automated_decision_making", &p.automated_decision_making),
    ] {
        row(&mut w, ["package", "", "", "", field, value])?;
    }
    for c in &p.categories {
        let mut item =
            |field: &str, value: &str| row(&mut w, ["category", "", &c.category, "", field, value]);
        item("description", &c.description)?;
        for x in &c.purposes {
            item("purpose", x)?;
        }
        item("legal_basis", &c.legal_basis)?;
        for x in &c.recipients {
            item("recipient", x)?;
        }
        item("retention", &c.retention)?;
        item("source", &c.source)?;
    }
    for r in &p.rights {
        row(&mut w, ["right", "", "", "", "", r])?;
    }
    for r in &p.records {
        row(
            &mut w,
            [
                "record",
                &r.source,
                &r.category,
                &r.location,
                &r.field,
                &r.value,
            ],
        )?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

fn empty_package() -> Package {
    Package {
        format: String::new(),
        request_id: String::new(),
        request_kind: String::new(),
        subject: String::new(),
        generated_at: String::new(),
        categories: Vec::new(),
        rights: Vec::new(),
        automated_decision_making: String::new(),
        records: Vec::new(),
    }
}

fn read_csv(bytes: &[u8]) -> std::result::Result<Package, String> {
    let mut r = csv::Reader::from_reader(bytes);
    let mut p = empty_package();
    for row in r.records() {
        let row = row.map_err(|e| e.to_string())?;
        let col = |i: usize| uncell(row.get(i).unwrap_or(""));
        match row.get(0).unwrap_or("") {
            "package" => {
                let v = col(5);
                match row.get(4).unwrap_or("") {
                    "format" => p.format = v,
                    "request_id" => p.request_id = v,
                    "request_kind" => p.request_kind = v,
                    "subject" => p.subject = v,
                    "generated_at" => p.generated_at = v,
                    "automated_decision_making" => p.automated_decision_making = v,
                    other => return Err(format!("unknown package field {other:?}")),
                }
            }
            "category" => {
                let name = col(2);
                if p.categories.last().is_none_or(|c| c.category != name) {
                    p.categories.push(CategoryInfo {
                        category: name,
                        description: String::new(),
                        purposes: Vec::new(),
                        legal_basis: String::new(),
                        recipients: Vec::new(),
                        retention: String::new(),
                        source: String::new(),
                    });
                }
                let c = p.categories.last_mut().ok_or("no category")?;
                let v = col(5);
                match row.get(4).unwrap_or("") {
                    "description" => c.description = v,
                    "purpose" => c.purposes.push(v),
                    "legal_basis" => c.legal_basis = v,
                    "recipient" => c.recipients.push(v),
                    "retention" => c.retention = v,
                    "source" => c.source = v,
                    other => return Err(format!("unknown category field {other:?}")),
                }
            }
            "right" => p.rights.push(col(5)),
            "record" => p.records.push(Record {
                source: col(1),
                category: col(2),
                location: col(3),
                field: col(4),
                value: col(5),
            }),
            other => return Err(format!("unknown section {other:?}")),
        }
    }
    Ok(p)
}

// XML: characters XML 1.0 cannot carry (most control characters; `\r`,
// which parsers normalise) are written as a JSON string literal in an
// element marked `encoding="json"`.

fn xml_safe(s: &str) -> bool {
    !s.chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{FFFE}' || c == '\u{FFFF}')
}

type XmlWriter = Writer<Vec<u8>>;

fn text_element(w: &mut XmlWriter, name: &str, value: &str) -> std::io::Result<()> {
    let mut start = BytesStart::new(name);
    let encoded;
    let text = if xml_safe(value) {
        value
    } else {
        start.push_attribute(("encoding", "json"));
        encoded = serde_json::Value::String(value.to_string()).to_string();
        encoded.as_str()
    };
    w.write_event(Event::Start(start))?;
    w.write_event(Event::Text(BytesText::new(text)))?;
    w.write_event(Event::End(BytesEnd::new(name)))
}

fn write_xml(p: &Package) -> std::io::Result<Vec<u8>> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.write_event(Event::Start(BytesStart::new("export")))?;
    text_element(&mut w, "format", &p.format)?;
    text_element(&mut w, "request-id", &p.request_id)?;
    text_element(&mut w, "request-kind", &p.request_kind)?;
    text_element(&mut w, "subject", &p.subject)?;
    text_element(&mut w, "generated-at", &p.generated_at)?;
    w.write_event(Event::Start(BytesStart::new("categories")))?;
    for c in &p.categories {
        w.write_event(Event::Start(BytesStart::new("category")))?;
        text_element(&mut w, "name", &c.category)?;
        text_element(&mut w, "description", &c.description)?;
        for x in &c.purposes {
            text_element(&mut w, "purpose", x)?;
        }
        text_element(&mut w, "legal-basis", &c.legal_basis)?;
        for x in &c.recipients {
            text_element(&mut w, "recipient", x)?;
        }
        text_element(&mut w, "retention", &c.retention)?;
        text_element(&mut w, "source", &c.source)?;
        w.write_event(Event::End(BytesEnd::new("category")))?;
    }
    w.write_event(Event::End(BytesEnd::new("categories")))?;
    w.write_event(Event::Start(BytesStart::new("rights")))?;
    for r in &p.rights {
        text_element(&mut w, "right", r)?;
    }
    w.write_event(Event::End(BytesEnd::new("rights")))?;
    text_element(
        &mut w,
        "automated-decision-making",
        &p.automated_decision_making,
    )?;
    w.write_event(Event::Start(BytesStart::new("records")))?;
    for r in &p.records {
        w.write_event(Event::Start(BytesStart::new("record")))?;
        text_element(&mut w, "source", &r.source)?;
        text_element(&mut w, "category", &r.category)?;
        text_element(&mut w, "location", &r.location)?;
        text_element(&mut w, "field", &r.field)?;
        text_element(&mut w, "value", &r.value)?;
        w.write_event(Event::End(BytesEnd::new("record")))?;
    }
    w.write_event(Event::End(BytesEnd::new("records")))?;
    w.write_event(Event::End(BytesEnd::new("export")))?;
    Ok(w.into_inner())
}

fn read_xml(bytes: &[u8]) -> std::result::Result<Package, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let mut reader = Reader::from_str(text);
    let mut p = empty_package();
    let mut path: Vec<String> = Vec::new();
    let mut json_encoded = false;
    let mut current = String::new();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                json_encoded = e
                    .attributes()
                    .flatten()
                    .any(|a| a.key.as_ref() == b"encoding" && a.value.as_ref() == b"json");
                current.clear();
                let parent = path.last().map(String::as_str).unwrap_or("");
                match (parent, name.as_str()) {
                    ("categories", "category") => p.categories.push(CategoryInfo {
                        category: String::new(),
                        description: String::new(),
                        purposes: Vec::new(),
                        legal_basis: String::new(),
                        recipients: Vec::new(),
                        retention: String::new(),
                        source: String::new(),
                    }),
                    ("records", "record") => p.records.push(Record {
                        source: String::new(),
                        category: String::new(),
                        location: String::new(),
                        field: String::new(),
                        value: String::new(),
                    }),
                    _ => {}
                }
                path.push(name);
            }
            Event::Text(t) => current.push_str(&t.unescape().map_err(|e| e.to_string())?),
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                let parent = path.last().map(String::as_str).unwrap_or("");
                let v = if json_encoded {
                    serde_json::from_str::<String>(current.trim()).map_err(|e| e.to_string())?
                } else {
                    std::mem::take(&mut current)
                };
                json_encoded = false;
                current.clear();
                match (parent, name.as_str()) {
                    ("export", "format") => p.format = v,
                    ("export", "request-id") => p.request_id = v,
                    ("export", "request-kind") => p.request_kind = v,
                    ("export", "subject") => p.subject = v,
                    ("export", "generated-at") => p.generated_at = v,
                    ("export", "automated-decision-making") => p.automated_decision_making = v,
                    ("rights", "right") => p.rights.push(v),
                    ("category", field) => {
                        let c = p
                            .categories
                            .last_mut()
                            .ok_or("category field outside a category")?;
                        match field {
                            "name" => c.category = v,
                            "description" => c.description = v,
                            "purpose" => c.purposes.push(v),
                            "legal-basis" => c.legal_basis = v,
                            "recipient" => c.recipients.push(v),
                            "retention" => c.retention = v,
                            "source" => c.source = v,
                            other => return Err(format!("unknown category field {other}")),
                        }
                    }
                    ("record", field) => {
                        let r = p
                            .records
                            .last_mut()
                            .ok_or("record field outside a record")?;
                        match field {
                            "source" => r.source = v,
                            "category" => r.category = v,
                            "location" => r.location = v,
                            "field" => r.field = v,
                            "value" => r.value = v,
                            other => return Err(format!("unknown record field {other}")),
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Package {
        Package {
            format: crate::package::PACKAGE_FORMAT.into(),
            request_id: "dsr-0123".into(),
            request_kind: "access".into(),
            subject: "ali<ce>&\"x\"".into(),
            generated_at: "2025-01-31T00:00:00.000Z".into(),
            categories: vec![crate::metadata::for_category("sessions", &[])],
            rights: crate::metadata::RIGHTS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            automated_decision_making: crate::metadata::AUTOMATED_DECISIONS.into(),
            records: vec![
                Record {
                    source: "meshguard-state".into(),
                    category: "revocations".into(),
                    location: "mg:{rev}:sessions".into(),
                    field: "alice\ns1".into(),
                    value: "17\r\u{1}".into(),
                },
                Record {
                    source: "upstream:ml".into(),
                    category: "upstream.ml".into(),
                    location: "http://x/{id}".into(),
                    field: "/records/0/data/text".into(),
                    value: "  spaced, \"quoted\" ; comma  ".into(),
                },
                Record {
                    source: "upstream:ml".into(),
                    category: "upstream.ml".into(),
                    location: "'quoted".into(),
                    field: "-1".into(),
                    value: "=HYPERLINK(\"http://x\")".into(),
                },
            ],
        }
    }

    #[test]
    fn no_csv_cell_starts_a_formula() {
        let bytes = write(&sample(), Format::Csv).unwrap();
        let mut r = csv::Reader::from_reader(bytes.as_slice());
        for record in r.records() {
            for cell in record.unwrap().iter() {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{cell:?}"
                );
            }
        }
    }

    #[test]
    fn every_format_parses_back_to_the_same_package() {
        let p = sample();
        for f in [Format::Json, Format::Csv, Format::Xml] {
            let bytes = write(&p, f).unwrap();
            assert_eq!(read(&bytes, f).unwrap(), p, "{f:?}");
        }
    }
}
