# The reference shell-runner driver. The build stage compiles it and bundles it with
# `conveyor-nestjs bundle` (one file and V8's code cache, docs/guides/production-build.md); the
# runtime stage keeps only the bundle: it needs no node_modules. Both stages use the same node
# image, so the cache primed in the first is valid in the second.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
# Copy sources explicitly so a host's node_modules, dist/ or .tools/ never enter the image.
COPY tsconfig.json tsconfig.build.json nest-cli.json ./
COPY src ./src
COPY libs ./libs
COPY apps ./apps
RUN npm run build && CONVEYOR_DRIVER_NAME=shell-runner npm run bundle

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/dist/bundle ./dist/bundle
USER node
EXPOSE 3000
CMD ["node", "dist/bundle/main.js"]
