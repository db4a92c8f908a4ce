#!/usr/bin/env bash
# Issue 19: can the Navigation-v1 recipe of the README (factored camera, query fusion reading
# positions only, warm-up fine-tuning) learn faster within 1M steps? Variants on the same
# pretrained encoder, each against the recorded baseline seeds
# (docs/bench/navigation-factored-query/s*):
#   lit     - the README's recipe: label guidance on what the camera can show, an auxiliary
#             loss predicting from the actor's features whether the named object is lit in
#             view (target_lit) and its bearing there, 0 elsewhere (target_lit_bearing)
#   labels  - the same on target_visible and target_bearing, which also count the object in
#             the dark beyond the lamp (58 % of the expert data's visible steps), where the
#             camera shows black
#   linear  - lit with the learning rate annealed linearly to 0 over the run (as in
#             rl-baselines3-zoo's Atari PPO), against lit's late oscillation
#   attr    - linear, and label guidance also on whether some object of the named colour
#             (target_color_lit) and of the named shape (target_shape_lit) is lit in view:
#             the instruction's two attributes matched apart, which held-out pairs compose
#   bow     - lit with a bag-of-words instruction encoder (pretrained so too, into
#             $OUT/enc-bow.pt): the query is then made from a mean of word embeddings, so
#             a held-out pair's query is built from the words' trained embeddings
#   bowlin  - bow with a linear (no ReLU) map after the mean of word embeddings (pretrained
#             so too, into $OUT/enc-bowlin.pt): the query is then exactly an affine map of
#             the words' mean, so a held-out pair's query is the trained pairs' parts added
#   words   - bow, and the query fusion's word_queries: each word queries the camera's cells
#             on its own, routed by a sparse gate to shape channels, colour channels or
#             positions, and the match is the sum over words (pretrained so too, into
#             $OUT/enc-words.pt)
#   wordsmall - words with word embeddings initialized at std 0.1 (torch's default: 1), so
#             the test split's paraphrase words, which training never shows, keep small
#             queries (pretrained so too, into $OUT/enc-wordsmall.pt)
#   seen    - words, and the bag of words' drop_unseen_words: ids no training step has shown
#             (the test split's paraphrase words) are read as padding, as a tokenizer maps
#             out-of-vocabulary words to an unknown token (pretrained so too, into
#             $OUT/enc-seen.pt)
#   seenlin - seen with the learning rate annealed linearly to 0 over the run (on seen's
#             encoder, $OUT/enc-seen.pt)
#   rseen   - seen with memory: RecurrentPPO (sb3-contrib), one LSTM (128 units) shared by
#             actor and critic after the same extractor, pretrained so too (BC on whole
#             episodes through the LSTM, into $OUT/enc-rseen.pt), against the feed-forward
#             policy's search loops (BENCHMARKS.md, "search loops")
#   skip    - seen with memory beside the feed-forward path: RecurrentPPO whose heads read
#             the features next to an LSTM's output (agent.recurrent.skip_connection; the
#             critic without an LSTM), started from seen's feed-forward encoder and BC head
#             ($OUT/enc-seen.pt) with the LSTM's columns of the heads at zero, so it starts
#             as the feed-forward policy and learns memory only where it pays
#   epochs  - PPO with 10 epochs per rollout instead of 4
# Usage: VARIANT=lit SEED=0 OUT=results/nav-query-1m docs/bench/navigation-query-1m/run.sh
# (MORE="--set agent.ppo.n_epochs=8" TAG=ep8 adds fine-tuning options to a variant and
# names its run folder $VARIANT-$TAG-s$SEED.)
# (STEPS=2000000 resumes a finished run to 2M, as recorded; the 2M outcomes are then added).
# (SCRATCH=1 trains the variant's agent with no pretraining: no encoder, no BC head, no critic
# warm-up; the label guidance and every --set option stay. Its run folder is
# $VARIANT-scratch-s$SEED; issue 19's from-scratch bar asks 2M steps: STEPS=2000000.)
# The expert data is the README workflow's (`mmrl collect --env navigation --policy expert
# --episodes 1000 --epsilon 0.1 --dataset-id mmrl/necessity/navigation-v1`); the encoder is
# pretrained here when $ENC is missing. Resumes a killed run; outcomes at 1,200 episodes per
# split. The epochs variant was stopped at 350k (BENCHMARKS.md).
set -euo pipefail
OUT=${OUT:-results/nav-query-1m}
SEED=${SEED:-0}
# the README recipe's encoders were pretrained on the same collect command's data with the
# lit labels recorded: DATASET=mmrl/necessity/navigation-lit-v1
DATASET=${DATASET:-mmrl/necessity/navigation-v1}
STEPS=${STEPS:-1000000}
VARIANT=${VARIANT:?set VARIANT=labels, lit, linear, attr, bow, bowlin, words, wordsmall, seen, seenlin, rseen, skip or epochs}
SCRATCH=${SCRATCH:-0}
case $SCRATCH in 0 | 1) ;; *) echo "run.sh: SCRATCH must be 0 or 1, got '$SCRATCH'" >&2; exit 2 ;; esac
export OMP_NUM_THREADS=1
AGENT=ppo-query
PRETRAIN_AGENT=
SET=(--set agent.extractor.encoders.camera=factored
     --set agent.extractor.fusion_kwargs.direct_query=false
     --set agent.extractor.fusion_kwargs.values=positions)
case $VARIANT in
    labels) EXTRA=(--label-guidance 1 --set "agent.guidance.labels=[target_visible,target_bearing]") ;;
    lit) EXTRA=(--label-guidance 1 --set "agent.guidance.labels=[target_lit,target_lit_bearing]") ;;
    linear) EXTRA=(--label-guidance 1 --set "agent.guidance.labels=[target_lit,target_lit_bearing]"
                   --set agent.ppo.lr_schedule=linear) ;;
    bow) EXTRA=(--label-guidance 1 --set "agent.guidance.labels=[target_lit,target_lit_bearing]")
         SET+=(--set agent.extractor.encoders.text=bow) ;;
    bowlin) EXTRA=(--label-guidance 1 --set "agent.guidance.labels=[target_lit,target_lit_bearing]")
            SET+=(--set agent.extractor.encoders.text=bow
                  --set agent.extractor.encoder_kwargs.text.linear=true) ;;
    words) EXTRA=(--label-guidance 1 --set "agent.guidance.labels=[target_lit,target_lit_bearing]")
           SET+=(--set agent.extractor.encoders.text=bow
                 --set agent.extractor.fusion_kwargs.word_queries=true) ;;
    wordsmall) EXTRA=(--label-guidance 1 --set "agent.guidance.labels=[target_lit,target_lit_bearing]")
               SET+=(--set agent.extractor.encoders.text=bow
                     --set agent.extractor.fusion_kwargs.word_queries=true
                     --set agent.extractor.encoder_kwargs.text.embedding_std=0.1) ;;
    seen) EXTRA=(--label-guidance 1 --set "agent.guidance.labels=[target_lit,target_lit_bearing]")
          SET+=(--set agent.extractor.encoders.text=bow
                --set agent.extractor.fusion_kwargs.word_queries=true
                --set agent.extractor.encoder_kwargs.text.drop_unseen_words=true) ;;
    seenlin) EXTRA=(--label-guidance 1 --set "agent.guidance.labels=[target_lit,target_lit_bearing]"
                    --set agent.ppo.lr_schedule=linear)
             SET+=(--set agent.extractor.encoders.text=bow
                   --set agent.extractor.fusion_kwargs.word_queries=true
                   --set agent.extractor.encoder_kwargs.text.drop_unseen_words=true) ;;
    rseen) EXTRA=(--label-guidance 1 --set "agent.guidance.labels=[target_lit,target_lit_bearing]")
           AGENT=recurrent-ppo-concat
           SET+=(--set agent.extractor.fusion=query
                 --set agent.recurrent.shared_lstm=true
                 --set agent.recurrent.enable_critic_lstm=false
                 --set agent.extractor.encoders.text=bow
                 --set agent.extractor.fusion_kwargs.word_queries=true
                 --set agent.extractor.encoder_kwargs.text.drop_unseen_words=true) ;;
    skip) EXTRA=(--label-guidance 1 --set "agent.guidance.labels=[target_lit,target_lit_bearing]")
          AGENT=recurrent-ppo-concat PRETRAIN_AGENT=ppo-query
          SET+=(--set agent.extractor.fusion=query
                --set agent.recurrent.shared_lstm=false
                --set agent.recurrent.enable_critic_lstm=false
                --set agent.recurrent.skip_connection=true
                --set agent.extractor.encoders.text=bow
                --set agent.extractor.fusion_kwargs.word_queries=true
                --set agent.extractor.encoder_kwargs.text.drop_unseen_words=true) ;;
    attr) EXTRA=(--label-guidance 1 --set agent.ppo.lr_schedule=linear --set
                 "agent.guidance.labels=[target_lit,target_lit_bearing,target_color_lit,target_shape_lit]") ;;
    epochs) EXTRA=(--set agent.ppo.n_epochs=10) ;;
    *) echo "run.sh: VARIANT must be labels, lit, linear, attr, bow, bowlin, words, wordsmall, seen, seenlin, rseen, skip or epochs, got '$VARIANT'" >&2; exit 2 ;;
esac
case $VARIANT in
    bow | bowlin | words | wordsmall | seen | rseen) ENC=${ENC:-$OUT/enc-$VARIANT.pt} ;;
    seenlin | skip) ENC=${ENC:-$OUT/enc-seen.pt} ;;
    *) ENC=${ENC:-$OUT/enc.pt} ;;
esac
mkdir -p "$OUT"
if [ "$SCRATCH" = 1 ]; then
    INIT=()
    TAG=scratch${TAG:+-$TAG}
else
    INIT=(--init-from "$ENC" --init-policy-head --critic-warmup 50000)
fi
# skip pretrains seen's feed-forward encoder (its recurrent --set options are ignored there)
[ "$SCRATCH" = 1 ] || [ -f "$ENC" ] || mmrl pretrain --dataset "$DATASET" --agent "${PRETRAIN_AGENT:-$AGENT}" \
    "${SET[@]}" --epochs 40 --threads 1 --out "$ENC"
read -r -a MORE <<< "${MORE:-}"
RUN=$OUT/$VARIANT${TAG:+-$TAG}-s$SEED
if [ -f "$RUN/checkpoints/latest.zip" ] || [ -f "$RUN/config.yaml" ]; then
    mmrl train --resume "$RUN" --steps "$STEPS" --quiet
else
    mmrl train --env navigation --agent "$AGENT" "${SET[@]}" "${EXTRA[@]}" "${MORE[@]}" \
        "${INIT[@]}" --steps "$STEPS" --seed "$SEED" --out "$RUN" --quiet
fi
for split in train test; do
    python scripts/navigation_outcomes.py "$RUN/model.zip" --split $split --episodes 1200 \
        --envs 200 --json "$RUN/outcomes-$split-$((STEPS / 1000))k.json" \
        > "$RUN/outcomes-$split-$((STEPS / 1000))k.txt"
done
