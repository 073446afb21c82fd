# The reference shell-runner driver. Build stage compiles with the dev toolchain; the runtime stage
# keeps only production dependencies and dist/ (Nest's build already rewrites the path aliases).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
# Copy sources explicitly so a host's node_modules, dist/ or .tools/ never enter the image.
COPY tsconfig.json tsconfig.build.json nest-cli.json ./
COPY src ./src
COPY libs ./libs
COPY apps ./apps
RUN npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
USER node
EXPOSE 3000
CMD ["node", "dist/src/main.js"]
