"""The `fakeface` command: thin click wrappers over the library."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from .cluster.connect import connection_scope
from .config import Config, ReportConfig, TrainConfig, dump_config, load_config
from .console import output
from .errors import RunError, UserError

DEMO_DATA = "data/demo"
DEMO_OUT = "runs/demo"


def _user_errors(fn):
    """Run the command in a console session; turn errors into one line: exit 2 for the user's, 1 for a
    failed run.

    Ray, if the command connected to it, is shut down after its last line (`connection_scope`).
    Once a command logs to a file (`console.output.capture`), any other exception (a Ray actor that
    cannot start, a worker killed for memory, a bug) is one line too, naming the log, which holds the
    traceback; before that, or with --verbose, it propagates with its traceback as usual.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with output.session(), connection_scope():
            try:
                return fn(*args, **kwargs)
            except UserError as exc:
                _exit(f"error: {exc}", exc.exit_code)
            except RunError as exc:
                _exit(f"failed: {exc}", exc.exit_code)
            except KeyboardInterrupt:
                # Only run and extract can resume; the others start over.
                command = click.get_current_context().info_name
                again = "rerun with --resume to finish" if "resume" in kwargs else f"run fakeface {command} again"
                _exit(f"interrupted: committed parts are kept; {again}", 130)
            except Exception as exc:
                if output.log_path() is None:
                    raise
                lines = [line for line in str(exc).splitlines() if line.strip()]
                _exit(f"failed: {type(exc).__name__}: {lines[0][:300] if lines else 'no message'}", 1)

    return wrapper


def _exit(message: str, code: int) -> None:
    logged = output.log_traceback()
    output.echo(message + (f" (log: {output.log_path()})" if logged else ""), err=True)
    sys.exit(code)


def _min_recall_option(fn):
    return click.option("--min-fake-recall", type=float, default=None,
                        help="Pick the threshold on CV folds that catches at least this share of fakes "
                             "(default: train.threshold, the one-standard-error rule).")(fn)


def _output_options(fn):
    fn = click.option("--max-error-fraction", type=float, default=None,
                      help="Fail (after writing every row) if more than this fraction of rows are errors.")(fn)
    fn = click.option("--verify", is_flag=True,
                      help="With --resume: re-hash inputs whose size and mtime are unchanged instead of trusting "
                           "them (reads every input).")(fn)
    fn = click.option("--resume", is_flag=True,
                      help="Continue a run in --out: only new inputs and inputs whose size or mtime changed.")(fn)
    fn = click.option("--overwrite", is_flag=True, help="Replace a run in --out.")(fn)
    return _break_lock_option(fn)


def _break_lock_option(fn):
    return click.option("--break-lock", is_flag=True,
                        help="Take over a stale lock on --out (its run is gone); a live run's lock is never broken.")(fn)


def _verbose_option(fn):
    return click.option("--verbose", "-v", is_flag=True,
                        help="Show Ray's, TensorFlow's and joblib's own log lines (default: OUT/logs/driver.log).")(fn)


def _config_options(fn):
    fn = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                      help="Override one config key (repeatable), e.g. --set train.backend=loky.")(fn)
    fn = click.option("--config", "config_files", multiple=True, type=click.Path(dir_okay=False),
                      help="YAML config file(s), merged in order over the defaults.")(fn)
    fn = click.option("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or local).")(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Tell photoshopped face images from real ones: MTCNN faces, embeddings, a grid-searched classifier, on Ray."""


@cli.command("show-config")
@_config_options
@_user_errors
def show_config(config_files, overrides, address) -> None:
    """Print the resolved config as YAML."""
    click.echo(dump_config(load_config(config_files, overrides, ray__address=address)), nl=False)


@cli.command()
@click.option("--infile", default=None, help=f"Folder or URI of images (default: {Config.infile}).")
@click.option("--testsplit", type=float, default=None,
              help=f"Fraction held out for testing (default {TrainConfig.test_split}).")
@click.option("--out", default=None, help=f"Output folder (default: {Config.out}).")
@_min_recall_option
@_output_options
@_verbose_option
@_config_options
@_user_errors
def run(infile, testsplit, out, min_fake_recall, break_lock, overwrite, resume, verify, max_error_fraction,
        verbose, config_files, overrides, address) -> None:
    """Extract, embed, train and report: the whole pipeline."""
    from .runs import run_all

    config = load_config(config_files, overrides, infile=infile, out=out, train__test_split=testsplit,
                         ray__address=address, max_error_fraction=max_error_fraction,
                         train__min_fake_recall=min_fake_recall, console__verbose=verbose or None)
    output.configure(config.console)
    _summary(run_all(config, overwrite=overwrite, resume=_resume(resume, verify), verify=verify,
                     break_lock=break_lock))


@cli.command()
@click.option("--infile", default=None, help="Folder or URI of images.")
@click.option("--out", default=None, help="Output folder; embeddings go to OUT/embeddings.")
@_output_options
@_verbose_option
@_config_options
@_user_errors
def extract(infile, out, break_lock, overwrite, resume, verify, max_error_fraction, verbose, config_files,
            overrides, address) -> None:
    """Sources -> faces -> embeddings, written as Parquet to OUT/embeddings."""
    from .runs import run_extract

    config = load_config(config_files, overrides, infile=infile, out=out, ray__address=address,
                         max_error_fraction=max_error_fraction, console__verbose=verbose or None)
    output.configure(config.console)
    extracted = run_extract(config, overwrite=overwrite, resume=_resume(resume, verify), verify=verify,
                            break_lock=break_lock).extract
    output.echo(f"embeddings: {config.out}/embeddings  ({extracted['n_inputs']} rows, "
                f"{extracted['embedder']})")
    output.echo("status:     " + ", ".join(f"{k} {v}" for k, v in extracted["counts_by_status"].items()))
    _logs_line()


@cli.command()
@click.option("--embeddings", required=True,
              help="An embeddings Parquet folder (path or URI) written by `fakeface extract`.")
@click.option("--testsplit", type=float, default=None,
              help=f"Fraction held out for testing (default {TrainConfig.test_split}).")
@click.option("--out", default=None, help=f"Output folder for the model, metrics and plots (default: {Config.out}).")
@_min_recall_option
@_break_lock_option
@_verbose_option
@_config_options
@_user_errors
def train(embeddings, testsplit, out, min_fake_recall, break_lock, verbose, config_files, overrides, address) -> None:
    """Grid-search the classifier on embeddings and write the model, metrics and plots."""
    from .runs import run_train

    config = load_config(config_files, overrides, out=out, train__test_split=testsplit, ray__address=address,
                         train__min_fake_recall=min_fake_recall, console__verbose=verbose or None)
    output.configure(config.console)
    _summary(run_train(config, embeddings, break_lock=break_lock))


@cli.command()
@click.option("--model", "model_dir", required=True, help="A trained model folder (a run's OUT/model).")
@click.option("--infile", required=True, help="Folder or URI of images to classify.")
@click.option("--out", default=None, help="Output folder; predictions go to OUT/predictions.")
@click.option("--fake-share", type=float, default=None,
              help="Call this share of the images with a face fake, the highest scores first, instead of "
                   "cutting at the model's threshold: for a batch whose share of fakes is known.")
@click.option("--relabel", is_flag=True,
              help="With --fake-share: label the scores already in OUT/predictions again (another share, or a "
                   "relabel that was stopped); no image is read.")
@click.option("--overwrite", is_flag=True, help="Replace OUT/predictions.")
@_break_lock_option
@_verbose_option
@_config_options
@_user_errors
def predict(model_dir, infile, out, fake_share, relabel, overwrite, break_lock, verbose, config_files, overrides,
            address) -> None:
    """Classify images with a trained model: Parquet rows with score, p_fake and pred."""
    from .runs import run_predict

    config = load_config(config_files, overrides, infile=infile, out=out, ray__address=address,
                         predict__fake_share=fake_share, console__verbose=verbose or None)
    output.configure(config.console)
    summary = run_predict(config, model_dir, overwrite=overwrite, break_lock=break_lock, relabel=relabel)
    output.echo("")
    output.echo(f"predictions {config.out}/predictions  ({summary['n_inputs']} rows, {summary['embedder']}, "
                f"{summary['images_per_s']:.1f} images/s)")
    output.echo("prediction  " + ", ".join(f"{k} {v}" for k, v in summary["counts_by_prediction"].items()))
    threshold = summary["threshold"]
    output.echo(f"threshold   {'none' if threshold is None else f'{threshold:.3f}'} ({summary['threshold_rule']})")
    output.echo("status      " + ", ".join(f"{k} {v}" for k, v in summary["counts_by_status"].items()))
    _logs_line()


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("--address", required=True, envvar="RAY_API_SERVER_ADDRESS",
              help="Ray Jobs API address, e.g. http://head:8265.")
@click.option("--runtime-env", "runtime_env", default="jobs/runtime_env.yaml", show_default=True,
              type=click.Path(dir_okay=False), help="Runtime env YAML for the job.")
@click.option("--working-dir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Folder uploaded as the job's working directory (holds fakeface_ray/).")
@click.option("--no-wait", is_flag=True, help="Return once the job is submitted.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, required=True)
@_user_errors
def submit(address, runtime_env, working_dir, no_wait, args) -> None:
    """Run `fakeface ARGS` on a Ray cluster as a Ray Job: `fakeface submit --address URL -- run ...`."""
    from .cluster.jobs import load_runtime_env
    from .cluster.jobs import submit as submit_job

    job_id, status = submit_job(address, list(args), load_runtime_env(runtime_env, working_dir),
                                wait=not no_wait, echo=output.echo)
    out = _out_of(list(args))
    output.echo(f"[fakeface] job {job_id}: {status}" + (f"; outputs in {out}" if out else ""))
    if not no_wait and status != "SUCCEEDED":
        sys.exit(1)


def _out_of(args: list[str]) -> str | None:
    """The --out of a submitted command's arguments (`--out DIR` or `--out=DIR`), if it names one."""
    for k, arg in enumerate(args):
        if arg.startswith("--out="):
            return arg.removeprefix("--out=")
        if arg == "--out" and k + 1 < len(args):
            return args[k + 1]
    return None


@cli.command("audit")
@click.option("--infile", default=None, help=f"Folder or URI of labelled images (default: {Config.infile}).")
@click.option("--strict", is_flag=True, help="Exit 1 when any cue separates the classes (AUC above audit.max_auc).")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False),
              help="Also write the audit to this JSON file (path or URI).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override one config key (repeatable).")
@click.option("--config", "config_files", multiple=True, type=click.Path(dir_okay=False),
              help="YAML config file(s), merged in order over the defaults.")
@_user_errors
def audit_command(infile, strict, json_path, overrides, config_files) -> None:
    """Check labelled images for shortcuts: does how the files were saved tell real from fake?

    Per class: JPEG quality, chroma subsampling, EXIF/ICC/XMP/Photoshop markers, format, size and
    colour mode, each with the cross-validated ROC AUC of a classifier that sees only that cue.
    """
    from .reporting.audit import text_table
    from .runs import run_audit, write_audit

    config = load_config(config_files, overrides, infile=infile)
    audited = run_audit(config)
    result = audited.to_dict()
    for line in text_table(result):
        output.echo(line)
    if json_path:
        write_audit(audited, json_path)
    if strict and result["flagged"]:
        sys.exit(1)


@cli.command("report")
@click.argument("run_dir")
@click.option("--samples", default=ReportConfig.samples_per_class, show_default=True, help="Images per sample grid.")
@_user_errors
def report_command(run_dir, samples) -> None:
    """Rebuild RUN_DIR/report.html and the plots from a finished run."""
    from .reporting.html import build_report

    click.echo(f"report: {build_report(run_dir, samples)}")


@cli.command("check-weights")
@click.argument("path", type=click.Path(dir_okay=False))
@_user_errors
def check_weights(path) -> None:
    """Check a FaceNet weight file: layout, embedding size, parameters, sha256, and that it loads."""
    from .config import EmbedConfig
    from .stages.embedders import describe_weights, load_embedder
    from .stages.requirements import require

    require("h5py", "tensorflow")
    info = describe_weights(path)
    for key in ("path", "layout", "dims", "parameters", "sha256"):
        click.echo(f"{key:<11}{info[key]}")
    embedder = load_embedder(EmbedConfig(embedder="facenet", weights=path))
    click.echo(f"{'loads':<11}yes: {embedder.name}, preprocessing {embedder.preprocess}")


@cli.command("demo-data")
@click.option("--out", default=DEMO_DATA, show_default=True, help="Where to write the corpus.")
@click.option("--seed", default=Config.seed, show_default=True, help="Random seed; the corpus is deterministic.")
@click.option("--variants", default=2, show_default=True, help="Images per identity.")
@_user_errors
def demo_data(out, seed, variants) -> None:
    """Generate the labelled demo corpus (Kaggle layout) from faces scikit-image ships."""
    from .demo import build_demo_corpus
    from .stages.requirements import require

    require("mtcnn")  # the fakes are spliced on MTCNN's landmarks (its weights, run in numpy)
    manifest = build_demo_corpus(out, seed=seed, variants=variants)
    labels = [m["label"] for m in manifest["images"]]
    click.echo(f"wrote {labels.count('real')} real and {labels.count('fake')} fake images to {out}")


@cli.command()
@click.option("--out", default=DEMO_OUT, show_default=True, help="Output folder of the demo run.")
@click.option("--data", "data_dir", default=DEMO_DATA, show_default=True, help="Demo corpus folder.")
@_break_lock_option
@_verbose_option
@_config_options
@_user_errors
def demo(out, data_dir, break_lock, verbose, config_files, overrides, address) -> None:
    """Build the demo corpus if missing, then run the whole pipeline on it (replacing an earlier demo run)."""
    from .demo import CORPUS, run_demo

    config = load_config(config_files, overrides, infile=str(Path(data_dir) / CORPUS), out=out,
                         ray__address=address, console__verbose=verbose or None)
    output.configure(config.console)
    _summary(run_demo(config, data_dir, break_lock=break_lock))


def _resume(resume: bool, verify: bool) -> bool:
    if verify and not resume:
        raise click.UsageError("--verify goes with --resume")
    return resume


def _summary(trained) -> None:
    metrics, record = trained.metrics, trained.record
    out = record.config["out"]
    echo = output.echo
    echo("")
    echo("=" * 64)
    if "n_inputs" in record.extract:
        echo(f"inputs     {record.extract['n_inputs']}   " +
             ", ".join(f"{k} {v}" for k, v in metrics["counts_by_status"].items()))
    echo(f"embedder   {metrics['embedder']}")
    duplicates = metrics["duplicates"]
    echo(f"duplicates {duplicates['groups']} sets of identical files ({duplicates['rows']} rows"
         + (f", {duplicates['mixed_labels']} with both labels" if duplicates["mixed_labels"] else "")
         + "), each kept on one side of the split")
    echo(f"best       {metrics['classifier']} {metrics['best_params']}  "
         f"(cv macro F1 {metrics['cv_best_macro_f1']:.3f})")
    echo(f"test       n={metrics['n_test']}  accuracy {metrics['accuracy']:.3f}  "
         f"ROC AUC {metrics['roc_auc'] if metrics['roc_auc'] is None else round(metrics['roc_auc'], 3)}")
    for name, row in metrics["per_class"].items():
        echo(f"  {name:<5}    precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
             f"f1 {row['f1']:.3f}  support {row['support']}")
    synthetic = record.train.get("synthetic") or {}
    if "fakes" in synthetic:
        echo(f"synthetic  {synthetic['fakes']} fakes from {synthetic['parents']} training reals "
             f"({synthetic['variants']} each), training side only")
    elif "skipped" in synthetic:
        echo(f"synthetic  none: {synthetic['skipped']}")
    splice = record.train.get("splice") or {}
    if "fallback" in splice:
        echo(f"splice-v1  not used (fallback {splice['fallback']}): {splice['reason']}")
    elif "histories" in splice:
        first = sum(h[0]["loss"] for h in splice["histories"]) / len(splice["histories"])
        last = sum(h[-1]["loss"] for h in splice["histories"]) / len(splice["histories"])
        echo(f"splice-v1  {splice['use']}: {splice['networks']} network(s) {'reused' if splice['reused'] else 'trained'} "
             f"on {splice['training_images']} images, {splice['epochs']} epochs, mean loss {first:.3f} -> {last:.3f}, "
             f"{splice['train_seconds_per_1000_images']:.0f} s per 1,000 training images (report.html)")
    point = metrics["operating_point"]
    # A run written before false_alarm_rate was recorded has none to show.
    alarms = f", reals called fake {point['false_alarm_rate']:.3f}" if "false_alarm_rate" in point else ""
    echo(f"threshold  {point['threshold']:.3f} ({point['rule']}; on CV folds: fake recall "
         f"{point['fake_recall']:.3f}, precision {point['fake_precision']:.3f}{alarms})")
    echo(f"macro F1   {metrics['macro_f1']:.3f}   (original pipeline on Kaggle: 0.58)")
    if record.audit:
        echo(f"audit      {record.audit['verdict']} (report.html)")
    # Runs written before a resume left out first_row_s when it had no first row hold a null there.
    timings = {k: v for k, v in record.timings.items() if v is not None}
    echo("timings    " + ", ".join(f"{k.removesuffix('_s')} {v:.1f}s" for k, v in timings.items()))
    echo(f"outputs    {out}/ (report.html, metrics.json, classification_report.txt, plots/, model/, run.json)")
    _logs_line()
    echo("=" * 64)


def _logs_line() -> None:
    log = output.log_path()
    if log is not None:
        ray_logs = log.parent / "ray"
        output.echo(f"logs       {log}" + (f" (Ray's: {ray_logs})" if ray_logs.is_symlink() else ""))


def main() -> None:
    """Console entry point."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    cli(prog_name="fakeface")


if __name__ == "__main__":
    main()
