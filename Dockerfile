# cfnet image for the local try-out (docker-compose.yml): controller, simulator and agents.
#   docker build -t cfnet:local .
# Stage 1 compiles (all dependencies, protobuf code generation, tsc); stage 2 keeps the compiled
# program, its production dependencies and the tools the agent drives (nft, ip, iptables for its
# default filterMode; netcat-openbsd and curl, the CNI shim's transports to the warm executor).

# Node.js as in the BOSH release (bosh/config/blob-sources.yml; a packaging test keeps them equal).
FROM node:24.13.0-bookworm-slim AS build
WORKDIR /opt/cfnet
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY proto ./proto
COPY scripts ./scripts
COPY src ./src
COPY bin ./bin
COPY native ./native
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:24.13.0-bookworm-slim
RUN apt-get update \
  && apt-get install -y --no-install-recommends nftables iproute2 iptables netcat-openbsd curl ca-certificates \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/cfnet
ENV NODE_ENV=production
COPY --from=build /opt/cfnet/package.json ./package.json
COPY --from=build /opt/cfnet/node_modules ./node_modules
COPY --from=build /opt/cfnet/dist ./dist
COPY --from=build /opt/cfnet/bin ./bin
COPY docker ./docker
ENTRYPOINT ["node", "/opt/cfnet/bin/cfnet.js"]
CMD ["--help"]
