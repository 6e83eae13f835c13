#!/usr/bin/env bash
# Copy Swagger UI (npm's swagger-ui-dist) into the package, so that the server's /docs page works offline.
# Run it again with another version to update: scripts/vendor_swagger_ui.sh [VERSION]. Needs npm.
set -euo pipefail
VERSION="${1:-5.35.0}"
cd "$(dirname "$0")/.."
TARGET=src/cardloop/server/docs_assets
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null && tar xzf "swagger-ui-dist-$VERSION.tgz")
mkdir -p "$TARGET"
for file in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png LICENSE NOTICE; do
  cp "$WORK/package/$file" "$TARGET/$file"
done
echo "swagger-ui-dist $VERSION (Apache-2.0), copied by scripts/vendor_swagger_ui.sh" > "$TARGET/VERSION"
echo "copied swagger-ui-dist $VERSION into $TARGET"
