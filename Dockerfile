# The app as it runs in production: `python main.py` (gunicorn) on port 3000, behind the reverse
# proxy of compose.yaml (deploy/nginx.conf). Build: docker build -t slack-app .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The runtime dependencies only (no test tools), in their own layer: code changes reuse it.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY main.py manifest.yml ./
COPY bolt_app ./bolt_app

# A user of its own, and a folder it may write for a SQLite database (compose uses PostgreSQL).
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir /data && chown app:app /data
USER 10001:10001
ENV DATABASE_URL=sqlite:////data/slack_app.db \
    PORT=3000
EXPOSE 3000

# /healthz answers 200 while the database answers, 503 otherwise.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]

CMD ["python", "main.py"]
