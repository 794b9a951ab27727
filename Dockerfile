# mnrl_cuda image: build stage with the CUDA toolkit, slim runtime stage with cuDNN,
# NCCL and OpenMPI. Build: docker build -t mnrl_cuda .
# Run:   docker run --gpus all -v "$PWD:/work" -w /work mnrl_cuda configs/nli.json
FROM nvidia/cuda:12.6.3-cudnn-devel-ubuntu24.04 AS build
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential cmake pkg-config libjansson-dev zlib1g-dev libutf8proc-dev \
      libopenblas-openmp-dev libopenmpi-dev openmpi-bin && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY src src
COPY include include
COPY configs configs
COPY tests tests
COPY bench bench
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMNRL_MPI=ON -DMNRL_LINK_BINARY=OFF \
      -DCMAKE_CUDA_ARCHITECTURES="80;90a" && cmake --build build -j"$(nproc)" --target mnrl_cuda

FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      libjansson4 zlib1g libutf8proc3 libopenblas0-openmp openmpi-bin && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 mnrl
COPY --from=build /src/build/mnrl_cuda /usr/local/bin/mnrl_cuda
COPY configs /opt/mnrl_cuda/configs
USER mnrl
ENTRYPOINT ["mnrl_cuda"]
CMD ["--help"]
