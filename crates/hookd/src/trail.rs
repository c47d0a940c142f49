//! `hookd trail verify FILE`: checks a compliance trail export's digest chain
//! (docs/operations.md#compliance-trail).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use hookd_core::trail::{verify, Format, Verdict};

#[derive(Debug, Args)]
pub struct VerifyOptions {
    /// The export (`.jsonl` or `.csv`).
    pub file: PathBuf,
    /// `jsonl` or `csv` [default: from the file's extension].
    #[arg(long)]
    pub format: Option<String>,
    /// The digest the audit trail recorded for the export (`trail.exported`):
    /// the file must end in it.
    #[arg(long)]
    pub digest: Option<String>,
}

pub fn verify_file(opts: VerifyOptions) -> anyhow::Result<()> {
    let format = match opts.format.as_deref().or_else(|| opts.file.extension().and_then(|e| e.to_str())) {
        Some("csv") => Format::Csv,
        Some("jsonl") | Some("ndjson") | Some("json") => Format::JsonLines,
        Some(other) => bail!("--format: `{other}` is not one of jsonl, csv"),
        None => bail!("--format: say jsonl or csv (the file has no extension)"),
    };
    let text = std::fs::read_to_string(&opts.file).with_context(|| format!("cannot read {}", opts.file.display()))?;
    match verify(format, &text) {
        Verdict::Intact { records, digest, complete } => {
            match opts.digest {
                Some(want) if want != digest => bail!(
                    "the chain is intact but ends in {digest}, not the recorded {want}: records were cut or replaced"
                ),
                Some(_) => println!("trail intact: {records} records, ending in the recorded digest {digest}"),
                None => {
                    println!("trail self-consistent: {records} records, ending in digest {digest}");
                    println!(
                        "compare that digest with the export's `trail.exported` audit entry (or pass --digest): \
                         without it a rewritten file would pass too"
                    );
                }
            }
            if !complete {
                println!("note: the export stopped at its limit; later messages are in another export");
            }
            Ok(())
        }
        Verdict::Broken { line, why } => bail!("trail broken at line {line}: {why}"),
    }
}
