"""Moving data in and out: ai-chatbot's Postgres import (``chatbot``) and its shared reporting."""
