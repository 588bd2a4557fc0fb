-- The flagship: over a web crawl (WARC files, e.g. Common Crawl's), the 90th percentile of
-- the HTML page size per language, with the number of pages.
-- A page is a response record with HTTP status 200 and Content-Type text/html; its size is
-- the HTTP body as transferred (payload_length); its language comes from the record, the
-- HTTP headers or the HTML itself (docs/warc.md). The mappers build the per-record columns
-- in C (input:frame), so no payload is ever copied into Lua.
return {
  map = function(input, ctx)
    return input:frame{ types = { "response" },
                        columns = { "status", "mime", "language", "payload_length" } }
      :filter("status", "==", 200)
      :filter("mime", "==", "text/html")
      :select("language", "payload_length")
  end,

  reduce = function(f, ctx)
    return f:group_by("language")
            :agg{ pages = count(), p90 = quantile("payload_length", 0.9) }
            :sort_by("language")
  end,
}
