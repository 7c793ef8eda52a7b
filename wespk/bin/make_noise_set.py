"""Build a noise set and a simulated RIR set (for machines without MUSAN / RIRS_NOISES).

Usage:
  python -m wespk.bin.make_noise_set [--train-data DATA_DIR] [options] OUT_DIR
  python -m wespk.bin.make_noise_set --data DATA_DIR --out_dir OUT_DIR [options]

Writes OUT_DIR/noise (coloured noise, babble of 3-7 training speakers) and
OUT_DIR/rirs (shoebox-room RIRs from pyroomacoustics), each with audio/*.wav|flac,
wav.scp, utt2category and utt2dur. Point the training config at them:
``dataset_args.noise_data: OUT_DIR/noise`` and ``reverb_data: OUT_DIR/rirs``.
Re-running with the same options gives the same files (fixed seeds).
"""

import argparse
import logging
import sys

from wespk.augment.noise_sets import build_noise_set, build_rir_set
from wespk.data.data_dir import audio_by_speaker

logger = logging.getLogger("wespk.bin.make_noise_set")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--train-data", "--train_data", "--data", dest="train_data", default=None,
                        help="data dir whose speech makes the babble (needed for --num-babble/--num-speech)")
    parser.add_argument("--num-coloured", "--num_coloured", type=int, default=20)
    parser.add_argument("--num-babble", "--num_babble", type=int, default=20)
    parser.add_argument("--babble-speakers", "--babble_speakers", default="3,7",
                        help="min,max speakers per babble file (default: %(default)s)")
    parser.add_argument("--num-speech", "--num_speech", type=int, default=0,
                        help="speech files for online babble (category 'speech')")
    parser.add_argument("--num-rirs", "--num_rirs", type=int, default=40)
    parser.add_argument("--rt60", default="0.2,0.8", help="min,max reverberation time in s")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per noise file")
    parser.add_argument("--sample-rate", "--sample_rate", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--format", default="wav", choices=("wav", "flac"),
                        help="audio format (default: %(default)s; WAV spans read faster)")
    parser.add_argument("--out-dir", "--out_dir", dest="out_dir_option", default=None,
                        help="same as the OUT_DIR argument")
    parser.add_argument("out_dir", nargs="?", default=None)
    args = parser.parse_args(argv)
    if (args.out_dir is None) == (args.out_dir_option is None):
        parser.error("give the output directory once: OUT_DIR or --out-dir")
    args.out_dir = args.out_dir or args.out_dir_option
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        low, high = (int(v) for v in args.babble_speakers.split(","))
        rt_low, rt_high = (float(v) for v in args.rt60.split(","))
    except ValueError:
        parser.error("--babble-speakers and --rt60 take 'min,max'")
    if args.train_data is None and (args.num_babble or args.num_speech):
        logger.info("no --train-data: making coloured noise only")
        args.num_babble = args.num_speech = 0
    try:
        speech = audio_by_speaker(args.train_data) if args.train_data else None
        count = build_noise_set(f"{args.out_dir}/noise", speech, args.num_coloured,
                                args.num_babble, (low, high), args.num_speech, args.duration,
                                args.sample_rate, args.seed, args.format)
        logger.info("wrote %d noise files to %s/noise", count, args.out_dir)
        if args.num_rirs:
            count = build_rir_set(f"{args.out_dir}/rirs", args.num_rirs, args.sample_rate,
                                  args.seed + 1, (rt_low, rt_high), args.format)
            logger.info("wrote %d RIRs to %s/rirs", count, args.out_dir)
    except (ValueError, OSError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
