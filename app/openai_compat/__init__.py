"""OpenAI's ``/v1/audio/transcriptions``, answered by any provider through a job."""
