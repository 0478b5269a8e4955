#!/usr/bin/env bash
# Fetches the jars the Spark verifier loads once into the cache dir with Maven;
# later runs find them there and download nothing: Delta Lake
# (io.delta:delta-spark_2.12, io.delta:delta-storage) and S3A for `s3a://` tables
# (org.apache.hadoop:hadoop-aws at the Hadoop version pyspark 3.5 bundles,
# 3.3.4, and the AWS SDK bundle that hadoop-aws 3.3.4 was built against).
# Spark 3.5 ships everything else.
#   DELTA_VERSION        (default 3.3.2, the Delta 3.x line for Spark 3.5)
#   HADOOP_AWS_VERSION   (default 3.3.4: must equal pyspark's hadoop-client-api-*.jar)
#   AWS_SDK_BUNDLE_VERSION (default 1.12.262, hadoop-aws 3.3.4's own dependency)
#   TRIBUTARY_JARS_DIR   (default $TRIBUTARY_CACHE_DIR/jars = /var/cache/tributary/jars)
#   TRIBUTARY_MAVEN_ARGS extra Maven arguments (e.g. -o for offline, -s settings.xml for a mirror)
set -euo pipefail

DELTA_VERSION="${DELTA_VERSION:-3.3.2}"
JARS_DIR="${TRIBUTARY_JARS_DIR:-${TRIBUTARY_CACHE_DIR:-/var/cache/tributary}/jars}"
HADOOP_AWS_VERSION="${HADOOP_AWS_VERSION:-3.3.4}"
AWS_SDK_BUNDLE_VERSION="${AWS_SDK_BUNDLE_VERSION:-1.12.262}"
ARTIFACTS=(
  "io.delta:delta-spark_2.12:$DELTA_VERSION"
  "io.delta:delta-storage:$DELTA_VERSION"
  "org.apache.hadoop:hadoop-aws:$HADOOP_AWS_VERSION"
  "com.amazonaws:aws-java-sdk-bundle:$AWS_SDK_BUNDLE_VERSION"
)

mkdir -p "$JARS_DIR"
for coords in "${ARTIFACTS[@]}"; do
  IFS=: read -r _group artifact version <<<"$coords"
  jar="$JARS_DIR/$artifact-$version.jar"
  if [ -s "$jar" ]; then
    continue
  fi
  if ! command -v mvn >/dev/null 2>&1; then
    echo "fetch_delta_jars: mvn not found; install Maven (apt-get install maven) to fetch $coords into $JARS_DIR" >&2
    exit 1
  fi
  log="$(mktemp)"
  echo "fetch_delta_jars: downloading $coords into $JARS_DIR"
  # shellcheck disable=SC2086
  if ! mvn -B -q -Dstyle.color=never ${TRIBUTARY_MAVEN_ARGS:-} org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
      -Dartifact="$coords" -DoutputDirectory="$JARS_DIR" -Dmdep.overWriteReleases=true >"$log" 2>&1 \
      || [ ! -s "$jar" ]; then
    {
      echo "fetch_delta_jars: Maven could not download $coords into $JARS_DIR."
      echo "  Check access to Maven Central (or a mirror in ~/.m2/settings.xml), then re-run"
      echo "  \`bash scripts/fetch_delta_jars.sh\`; or copy $artifact-$version.jar into $JARS_DIR by hand."
      echo "  Maven said:"
      grep -o '\[ERROR\] .*' "$log" | grep -v -e 'Re-run Maven' -e 'full stack trace' -e 'For more information' \
        -e '^\[ERROR\] \[Help' -e '^\[ERROR\] *$' | head -3 | cut -c1-400 | sed 's/^/    /'
    } >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  # Keep one version per artifact, so the test kit never picks a stale one.
  find "$JARS_DIR" -maxdepth 1 -name "$artifact-*.jar" ! -name "$artifact-$version.jar" -delete
done
echo "fetch_delta_jars: ok ($JARS_DIR: $(cd "$JARS_DIR" && ls ./*.jar | xargs -n1 basename | tr '\n' ' '))"
