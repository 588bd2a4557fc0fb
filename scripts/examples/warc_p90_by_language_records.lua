-- The flagship job written record by record (input:records()), for comparison with the
-- frame version warc_p90_by_language.lua: same output, slower, but shows the record API.
return {
  map = function(input, ctx)
    for rec in input:records("response") do
      if rec.status == 200 and rec.mime == "text/html" then
        ctx:emit{ language = rec:language(), payload_length = rec.payload_length }
      end
    end
  end,

  reduce = function(f, ctx)
    return f:group_by("language")
            :agg{ pages = count(), p90 = quantile("payload_length", 0.9) }
            :sort_by("language")
  end,
}
