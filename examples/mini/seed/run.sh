#!/usr/bin/env bash
# SEED on the mini corpus: a diffusion enhancer trained without speaker labels on the
# training utterances for two frozen backbones (the mini recipe's ResNet and the
# converted GE2E model), measured on clean trials and on a noisy condition built from
# noise and rooms disjoint from the training ones.
#
# Usage: bash run.sh [--stage N] [--stop_stage M] [--resnet_exp ../v1/exp/resnet] [--nproc 2] [--nj 2]
#                    [--enhance_seed 0] [--snrs "0 5 10"] [--backbones "resnet ge2e"]
#
# Stages
#   1 data        data/{train,test} from corpus/mini, data/test/trials, data/train/audio.list
#   2 noise       data/aug (training noise/RIRs: make_noise_set seed 777, as examples/mini/v1)
#                 data/aug_eval (evaluation noise/RIRs: seed 2027, disjoint draws)
#   3 noisy       data/test_snr{0,5,10} (reverb + noise at a fixed SNR, per-key seed 2027);
#                 data/trials/{clean,clean_vs_snrX,snrX_vs_snrX}
#   4 backbones   exp/resnet (average of ../v1's checkpoints), exp/ge2e (convert-resemblyzer)
#   5 extract     exp/<bb>/embeddings/{train,test,test_snrX}, eval_all (test + noisy in one scp)
#   6 train       exp/seed_<bb> (torchrun wespk.bin.train_enhancer; the exp dir is the enhancer)
#   7 enhance     exp/<bb>/embeddings_seed/{train,eval_all}  (wespk.bin.enhance --seed)
#   8 score       exp/<bb>/scores{,_seed}/<trials>.score (cosine, train mean subtracted), metrics.json
#   9 table       results.md
set -euo pipefail

# ---- configuration section ----
stage=1
stop_stage=9
resnet_exp=../v1/exp/resnet    # a trained mini-recipe exp dir (models/model_<epoch>.pt)
num_avg=5
nproc=2
nj=2
enhance_seed=0
snrs="0 5 10"
backbones="resnet ge2e"
eval_seed=2027
help_message=$(sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//')
# ---- end of configuration section ----

. ./path.sh
. tools/parse_options.sh
. tools/recipe.sh
corpus=$repo_root/corpus/mini

if run_stage 1; then
  log "stage 1: data dirs and trials"
  require "$corpus/train" "$corpus/test"
  for set in train test; do
    python -m wespk.bin.prepare_data --layout folder "$corpus/$set" "data/$set"
  done
  python -m wespk.bin.make_trials --seed 777 data/test/utt2spk data/test/trials
  awk '{print $2}' data/train/wav.scp > data/train/audio.list   # no labels: audio paths only
fi

if run_stage 2; then
  log "stage 2: training and evaluation noise sets (different seeds: different noise draws, babble mixtures and rooms)"
  require data/train/wav.scp
  python -m wespk.bin.make_noise_set --data data/train --out_dir data/aug --seed 777
  python -m wespk.bin.make_noise_set --data data/train --out_dir data/aug_eval --seed "$eval_seed"
fi

if run_stage 3; then
  log "stage 3: noisy test sets at $snrs dB and their trial lists"
  require data/test/wav.scp data/test/trials data/aug_eval/noise data/aug_eval/rirs
  mkdir -p data/trials
  cp data/test/trials data/trials/clean
  for snr in $snrs; do
    python local/make_noisy_data.py --data data/test --noise data/aug_eval/noise --rirs data/aug_eval/rirs \
      --snr "$snr" --seed "$eval_seed" --out_dir "data/test_snr$snr"
    python local/make_noisy_data.py --trials data/test/trials --test_suffix="-snr$snr" \
      --output "data/trials/clean_vs_snr$snr"
    python local/make_noisy_data.py --trials data/test/trials --enroll_suffix="-snr$snr" \
      --test_suffix="-snr$snr" --output "data/trials/snr${snr}_vs_snr$snr"
  done
fi

if run_stage 4; then
  log "stage 4: backbones"
  for bb in $backbones; do
    case $bb in
      resnet)
        require "$resnet_exp/models" "$resnet_exp/config.yaml"
        mkdir -p exp/resnet
        cp "$resnet_exp/config.yaml" exp/resnet/config.yaml
        python -m wespk.bin.average_model --src_path "$resnet_exp/models" --dst_model exp/resnet/avg_model.pt \
          --num "$num_avg" ;;
      ge2e)
        python -m wespk.bin.checkpoint_tool convert-resemblyzer exp/ge2e ;;
      *) die "unknown backbone $bb (resnet or ge2e)" ;;
    esac
  done
fi

if run_stage 5; then
  log "stage 5: embeddings of the training, clean test and noisy test sets"
  for bb in $backbones; do
    require "exp/$bb/config.yaml"
    for set in train test $(for s in $snrs; do echo "test_snr$s"; done); do
      python -m wespk.bin.extract --model_dir "exp/$bb" --data "data/$set" \
        --out_dir "exp/$bb/embeddings/$set" --nj "$nj"
    done
    mkdir -p "exp/$bb/embeddings/eval_all"
    cat "exp/$bb/embeddings/test/xvector.scp" $(for s in $snrs; do echo "exp/$bb/embeddings/test_snr$s/xvector.scp"; done) \
      > "exp/$bb/embeddings/eval_all/xvector.scp"
  done
fi

if run_stage 6; then
  log "stage 6: training the enhancers ($nproc process(es))"
  export OMP_NUM_THREADS=$(( $(nproc) / nproc > 0 ? $(nproc) / nproc : 1 ))
  for bb in $backbones; do
    require "conf/seed_$bb.yaml" "exp/$bb/config.yaml" data/train/audio.list data/aug/noise data/aug/rirs
    torchrun --standalone --nnodes=1 --nproc_per_node="$nproc" -m wespk.bin.train_enhancer \
      --config "conf/seed_$bb.yaml"
  done
fi

if run_stage 7; then
  log "stage 7: enhancing the embeddings (seed $enhance_seed)"
  for bb in $backbones; do
    require "exp/seed_$bb/enhancer.pt" "exp/$bb/embeddings/eval_all/xvector.scp"
    for set in train eval_all; do
      python -m wespk.bin.enhance --enhancer "exp/seed_$bb" --backbone "exp/$bb" --seed "$enhance_seed" \
        --input "exp/$bb/embeddings/$set/xvector.scp" --output_dir "exp/$bb/embeddings_seed/$set"
    done
  done
fi

if run_stage 8; then
  log "stage 8: cosine scoring and metrics, without and with enhancement"
  conditions="clean $(for s in $snrs; do echo "clean_vs_snr$s snr${s}_vs_snr$s"; done)"
  for bb in $backbones; do
    for variant in "" _seed; do
      emb=exp/$bb/embeddings$variant
      out=exp/$bb/scores$variant
      require "$emb/eval_all/xvector.scp" "$emb/train/xvector.scp"
      args=()
      for c in $conditions; do args+=(--trials "data/trials/$c" --output "$out/$c.score"); done
      python -m wespk.bin.score --embeddings "$emb/eval_all/xvector.scp" --mean_from "$emb/train/xvector.scp" "${args[@]}"
      python -m wespk.bin.compute_metrics --p_target 0.01 0.05 --json "$out/metrics.json" \
        --det_png "$out/det.png" $(for c in $conditions; do echo "$out/$c.score"; done)
    done
  done
fi

if run_stage 9; then
  log "stage 9: results table"
  python local/summarise.py --out results.md $(for bb in $backbones; do echo "exp/$bb"; done)
fi
log "done (stages $stage..$stop_stage)"
