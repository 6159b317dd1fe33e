# CUDA-capable image for cluster runs:
#   docker build -t ncib .
#   docker run --gpus all -v $PWD/outputs:/workspace/ncib/outputs -v /data:/data \
#     -e NCIB_DATA_DIR=/data ncib dataset=cifar100 seed_pair=[0,1]
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

WORKDIR /workspace/ncib
COPY pyproject.toml README.md ./
COPY ncib ./ncib
COPY conf ./conf
# a regular (non-editable) install: the configuration ships inside the package
# (the image's torch satisfies the project's bounds)
RUN python -m pip install --no-cache-dir .

ENTRYPOINT ["python", "-m", "ncib.run"]
