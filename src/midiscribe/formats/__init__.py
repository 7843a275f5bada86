"""Writers for transcriptions: MIDI, note-event CSV, sonified WAV."""
