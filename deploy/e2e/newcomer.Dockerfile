# A newcomer's machine for tests/getting_started.rs: bare Debian plus what `cargo install`
# needs besides Rust itself (a C linker and libc headers). Rust is the host's toolchain,
# mounted read-only by the test; the crates come from a copy of the host's registry cache.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
