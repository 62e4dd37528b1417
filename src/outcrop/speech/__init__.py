"""Speech-to-speech sessions for InvokeModelWithBidirectionalStream (the Nova Sonic protocol).

`protocol` (events and their rules), `audio` (PCM and resampling), `turns` (voice activity and
end of turn), `asr` / `tts` (the speech models), `models` (loading them once, running them in
threads), `text` (sentences and tool calls in generated text), `session` (one conversation).
"""
