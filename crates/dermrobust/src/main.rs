//! The `dermrobust` command line.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use dermrobust::commands;
use dermrobust::device::DeviceChoice;
use dermrobust::evaluation::engine::{self, Engine};
use dermrobust::training::TrainConfig;
use dermrobust_core::data::DATA_SPEC_HELP;

#[derive(Parser)]
#[command(
    name = "dermrobust",
    version,
    about = "Train dermoscopy image classifiers and measure how far to trust them",
    long_about = "Train skin-lesion (dermoscopy) classifiers and measure how far to trust them.\n\n\
                  Start with `dermrobust demo`: it trains a small model on dermrobust's own synthetic \
                  dermoscopy images and evaluates it, with no download.",
    after_help = DATA_SPEC_HELP
)]
struct Cli {
    /// No progress bars or per-epoch lines.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Where training and burn's forward and backward passes run: `cpu`, or `vulkan` (a GPU;
    /// needs a build with `--features vulkan`). Never chosen silently: the CPU unless named here.
    #[arg(long, global = true, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    /// Engine of inference-only forward passes (evaluate, predict, replay, black-box audits,
    /// bench's inference): `burn`; `tract`; or `ort`, ONNX Runtime, loaded from the library that
    /// ORT_DYLIB_PATH names (BENCHMARKS.md). Same probabilities within 1e-4; tract and ort run on
    /// the CPU.
    #[arg(long, global = true, value_enum, default_value_t = Engine::Burn)]
    engine: Engine,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect, split and generate datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Train a classifier (with --repeats N: N seeds, mean and standard deviation).
    #[command(after_help = DATA_SPEC_HELP)]
    Train(TrainArgs),
    /// Learning-rate range test: loss against an exponentially growing learning rate, with a
    /// suggested learning rate and a plot.
    LrFind(LrFindArgs),
    /// Evaluate a trained model: metrics.json (with 95% bootstrap intervals) and predictions.csv.
    #[command(after_help = DATA_SPEC_HELP)]
    Evaluate(commands::evaluate::EvaluateArgs),
    /// Class probabilities of image files, as a table or JSON.
    Predict(commands::predict::PredictArgs),
    /// Write a trained model as an ONNX file with its sidecar TOML (checked against the model).
    Export(commands::export::ExportArgs),
    /// The whole pipeline on synthetic data in a few minutes: train, evaluate, report.
    Demo(commands::demo::DemoArgs),
    /// Training and inference speed (images per second) of a model.
    Bench(commands::bench::BenchArgs),
    /// Rebuild a perturbed image from an audit record (or an image operation) and predict it.
    Replay(commands::replay::ReplayArgs),
    /// Where the model looks: Grad-CAM family, guided backprop, occlusion, RISE; localisation
    /// against lesion masks, faithfulness, sanity, and a gallery (report.html).
    #[command(after_help = DATA_SPEC_HELP)]
    Explain(commands::explain::ExplainArgs),
    /// Robustness audits of trained models.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Maron et al.'s comparison grid: baseline, +ADA, +AAM, +TTA and their combinations over
    /// architectures and repeats, trained and audited, in one table.
    #[command(after_help = DATA_SPEC_HELP)]
    Experiment(dermrobust::audits::experiment::ExperimentArgs),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Brittleness (Maron et al. 2021): P(class change), absolute change and AUROC under
    /// rotations, zooms, brightness, colour balance and gamma, and across photographs of one
    /// lesion; writes brittleness.json, brittleness_per_image.csv and report.html.
    #[command(after_help = DATA_SPEC_HELP)]
    Brittleness(commands::audit::BrittlenessArgs),
    /// Adversarial attacks (Du-Harpur et al. 2021): FGSM and PGD (white-box), few-pixel, colour
    /// balance and rotation + translation by differential evolution (black-box), and colour and
    /// rotation sweeps; writes adversarial.json, adversarial_per_image.csv (replayable records)
    /// and report.html.
    #[command(after_help = DATA_SPEC_HELP)]
    Adversarial(commands::adversarial::AdversarialArgs),
    /// Artefacts (Katsch et al. 2022): real templates (bubbles, rulers, ink markings) or
    /// procedural artefacts inserted into 0-100% of the test images over placement seeds;
    /// PR-AUC, AUROC, per-class precision/recall/FPR/FNR, McNemar (Edwards) against the clean
    /// set, P(class change); writes artefacts.json, artefacts_per_image.csv and report.html.
    #[command(after_help = DATA_SPEC_HELP)]
    Artefacts(commands::artefacts::ArtefactsArgs),
}

#[derive(Subcommand)]
enum DataCommand {
    /// Per-class counts, lesions, lesions with several photographs, split sizes and the check
    /// that no lesion crosses parts.
    #[command(after_help = DATA_SPEC_HELP)]
    Summary(commands::data::SummaryArgs),
    /// Make a lesion-aware stratified split (or k folds) and save it.
    #[command(after_help = DATA_SPEC_HELP)]
    Split(commands::data::SplitArgs),
    /// Write synthetic dermoscopy photographs, masks and a manifest CSV.
    Synth(commands::data::SynthArgs),
    /// Exact and near-duplicate images across the parts of a split (perceptual hash).
    #[command(after_help = DATA_SPEC_HELP)]
    Duplicates(commands::data::DuplicatesArgs),
}

/// Training options from flags and an optional TOML file, and the output folder.
#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    config: TrainConfig,
    /// Output folder of the run.
    #[arg(long)]
    out: PathBuf,
    /// TOML file with any of the options above (keys as the flag names with underscores);
    /// flags given on the command line win.
    #[arg(long)]
    config_file: Option<PathBuf>,
}

impl RunArgs {
    /// The configuration with the TOML file merged in (`subcommand` names the matches to read).
    fn resolved(mut self, matches: &clap::ArgMatches, subcommand: &str) -> Result<(TrainConfig, PathBuf)> {
        if let Some(file) = &self.config_file {
            let sub = matches.subcommand_matches(subcommand).expect("subcommand was parsed");
            self.config.merge_toml(file, sub).with_context(|| format!("reading {}", file.display()))?;
        }
        self.config.apply_recipe();
        Ok((self.config, self.out))
    }
}

#[derive(clap::Args)]
struct TrainArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Continue an interrupted run from its last checkpoint.
    #[arg(long)]
    resume: bool,
}

#[derive(clap::Args)]
struct LrFindArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Smallest and largest learning rate tried.
    #[arg(long, default_value_t = 1e-6)]
    start_lr: f64,
    #[arg(long, default_value_t = 1.0)]
    end_lr: f64,
    /// Number of batches (learning rates) tried.
    #[arg(long, default_value_t = 100)]
    steps: usize,
}

fn main() {
    dermrobust::device::keep_freed_memory();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if let Err(e) = run(cli, &matches) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli, matches: &clap::ArgMatches) -> Result<()> {
    let quiet = cli.quiet;
    dermrobust::device::select(cli.device)?;
    engine::set_engine(cli.engine)?;
    match cli.command {
        Command::Data(DataCommand::Summary(a)) => commands::data::summary(&a, quiet),
        Command::Data(DataCommand::Split(a)) => commands::data::split(&a),
        Command::Data(DataCommand::Synth(a)) => commands::data::synth(&a, quiet),
        Command::Data(DataCommand::Duplicates(a)) => commands::data::duplicates(&a, quiet),
        Command::Train(a) => {
            let (config, out) = a.run.resolved(matches, "train")?;
            commands::train::run(&config, &out, a.resume, quiet).map(|_| ())
        }
        Command::LrFind(a) => {
            let (config, out) = a.run.resolved(matches, "lr-find")?;
            commands::lr_find::run(&config, &out, a.start_lr, a.end_lr, a.steps, quiet)
        }
        Command::Evaluate(a) => commands::evaluate::run(&a, quiet),
        Command::Predict(a) => commands::predict::run(&a),
        Command::Export(a) => commands::export::run(&a),
        Command::Replay(a) => commands::replay::run(&a),
        Command::Explain(a) => commands::explain::run(&a, quiet),
        Command::Demo(a) => commands::demo::run(&a, quiet),
        Command::Bench(a) => commands::bench::run(&a),
        Command::Audit(AuditCommand::Brittleness(a)) => commands::audit::brittleness(&a, quiet),
        Command::Audit(AuditCommand::Adversarial(a)) => commands::adversarial::run(&a, quiet),
        Command::Audit(AuditCommand::Artefacts(a)) => commands::artefacts::run(&a, quiet),
        Command::Experiment(mut a) => {
            a.config.apply_recipe();
            dermrobust::audits::experiment::run(&a, quiet)
        }
    }
}

