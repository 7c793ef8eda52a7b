"""Who spoke when: diarize every recording of a data dir into ``OUT/rttm``.

::

    python -m wespk.bin.diarize --model_dir exp/resnet --data data/conv --out_dir exp/resnet/diar/conv \\
        [--ref_rttm data/conv/rttm] [--reco2num_spk data/conv/reco2num_spk] [--plot]

Writes ``OUT/rttm`` (NIST RTTM, one line per turn). With ``--ref_rttm``
also ``OUT/der.md`` and ``OUT/der.json`` (DER, missed speech, false alarm,
confusion, JER; ``--collar`` seconds each side, overlap scored) and, with
``--plot``, ``OUT/plots/<recording>.png``. Recordings that cannot be read
are named on stderr and in ``OUT/failed``; the others are still written
(exit status 1). See ``docs/diarization.md``.
"""

import argparse
import logging
import sys

from wespk.diarization.clustering import CLUSTERING_METHODS, ClusteringConfig
from wespk.diarization.metrics import DEFAULT_COLLAR
from wespk.diarization.pipeline import VAD_CHOICES, DiarizationConfig
from wespk.diarization.segmentation import DEFAULT_SHIFT, DEFAULT_WINDOW
from wespk.utils.trust_option import add_trust_checkpoint_option

logger = logging.getLogger("wespk.bin.diarize")


def add_diarization_options(parser: argparse.ArgumentParser, model_options: bool = True) -> None:
    """The options shared by this program and ``wespk diarize`` (which has its own model options)."""
    g = parser.add_argument_group("diarization")
    g.add_argument("--vad", choices=VAD_CHOICES, default="auto",
                   help="speech detection: silero-vad when installed (auto), or the energy VAD")
    g.add_argument("--window", type=float, default=DEFAULT_WINDOW, help="sub-segment length (s)")
    g.add_argument("--shift", type=float, default=DEFAULT_SHIFT, help="sub-segment shift (s)")
    g.add_argument("--min_silence", type=float, default=0.25, help="close shorter gaps between speech regions (s)")
    g.add_argument("--min_speech", type=float, default=0.25, help="drop shorter speech regions (s)")
    g.add_argument("--cluster", choices=CLUSTERING_METHODS, default="spectral",
                   help="spectral (speaker count from the eigengap) or agglomerative (threshold)")
    g.add_argument("--num_speakers", type=int, default=None, help="the number of speakers, when known")
    g.add_argument("--min_speakers", type=int, default=1)
    g.add_argument("--max_speakers", type=int, default=10)
    g.add_argument("--threshold", type=float, default=0.5, help="agglomerative: cosine-distance stop threshold")
    g.add_argument("--pval", type=float, default=0.2, help="spectral: fraction of each affinity row kept")
    g.add_argument("--max_dense", type=int, default=3000,
                   help="above this many sub-segments, cluster in chunks (bounded memory)")
    g.add_argument("--chunk_size", type=int, default=1000, help="sub-segments per chunk when chunked")
    g.add_argument("--seed", type=int, default=777, help="k-means seed")
    if not model_options:
        return
    g.add_argument("--batch_size", type=int, default=32, help="sub-segments per embedding batch")
    g.add_argument("--device", default="cpu")
    add_trust_checkpoint_option(g, "the model file")


def diarization_config(args: argparse.Namespace) -> DiarizationConfig:
    clustering = ClusteringConfig(method=args.cluster, num_speakers=args.num_speakers,
                                  min_speakers=args.min_speakers, max_speakers=args.max_speakers,
                                  threshold=args.threshold, pval=args.pval, max_dense=args.max_dense,
                                  chunk_size=args.chunk_size, seed=args.seed)
    return DiarizationConfig(vad=args.vad, min_silence=args.min_silence, min_speech=args.min_speech,
                             window=args.window, shift=args.shift, batch_size=args.batch_size,
                             clustering=clustering)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="config.yaml + avg_model.pt")
    parser.add_argument("--data", required=True, help="data dir with wav.scp (whole recordings), or a wav.scp")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--reco2num_spk", default=None, help="per-recording number of speakers (oracle)")
    parser.add_argument("--ref_rttm", default=None, help="score against this reference")
    parser.add_argument("--collar", type=float, default=DEFAULT_COLLAR, help="scoring collar, seconds each side")
    parser.add_argument("--skip_overlap", action="store_true", help="do not score overlapped speech")
    parser.add_argument("--plot", action="store_true", help="a time-line PNG per recording in OUT/plots")
    add_diarization_options(parser)
    return parser


def main(argv=None) -> int:
    from wespk.diarization.runner import DiarizationInputError, run_diarization
    from wespk.utils.logs import setup_logging
    args = build_parser().parse_args(argv)
    setup_logging(0)
    try:
        config = diarization_config(args)
        failed = run_diarization(args.model_dir, args.data, args.out_dir, config, reco2num_spk=args.reco2num_spk,
                                 ref_rttm=args.ref_rttm, collar=args.collar, skip_overlap=args.skip_overlap,
                                 plot=args.plot, device=args.device, trust_checkpoint=args.trust_checkpoint)
    except DiarizationInputError as e:
        print(f"diarize: error: {e}", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
