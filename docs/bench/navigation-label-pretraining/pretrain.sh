#!/bin/bash
# Issue 19 N1 (offline): does focused label pretraining (where the named object is) help
# Navigation-v1's held-out instructions? The same data and epochs with and without the labels.
cd /work/wt-e8
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/wt-e8 OMP_NUM_THREADS=1 MINARI_DATASETS_PATH=/work/runs-v1c/lab/n1/minari
d=/work/runs-v1c/lab/n1
[ -d $d/minari/mmrl/n1/all-v1 ] || mmrl collect --env navigation --policy expert --episodes 1000 --epsilon 0.1 --dataset-id mmrl/n1/all-v1 --quiet || exit 1
[ -f $d/enc-labels.pt ] || mmrl pretrain --dataset mmrl/n1/all-v1 --agent ppo-film --env navigation \
   --objectives bc,labels --labels target_in_view,target_bearing --epochs 10 --patience 10 --threads 1 --out $d/enc-labels.pt --log-interval 120 || exit 1
mmrl evaluate $d/enc-labels.pt --env navigation --episodes 200 --split train,test --json $d/eval-labels.json
[ -f $d/enc-bc.pt ] || mmrl pretrain --dataset mmrl/n1/all-v1 --agent ppo-film --env navigation \
   --objectives bc --epochs 10 --patience 10 --threads 1 --out $d/enc-bc.pt --log-interval 120 || exit 1
mmrl evaluate $d/enc-bc.pt --env navigation --episodes 200 --split train,test --json $d/eval-bc.json
